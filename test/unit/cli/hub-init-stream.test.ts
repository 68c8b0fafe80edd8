import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { decodeJoinCode } from '../../../src/core/join-code.js';
import { agentConfigSchema } from '../../../src/core/protocol.js';
import { certificatePin, generateTlsIdentity } from '../../../src/core/stream/tls-identity.js';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'wgp2p-init-stream-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
const init = (hub: string, ...extra: string[]) => cli('hub', 'init', '--dir', hub, '--endpoint', '203.0.113.2:51820', '--address', '10.99.0.1/24', '--json', ...extra);

test('hub init makes a self-signed TLS identity (key 0600) whose pin and TCP port reach join codes and agent configs', () => {
  const hub = join(dir, 'a');
  const r = init(hub);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { stream: { port: number; pin: string; certificate: string } };
  assert.equal(out.stream.port, 443);
  assert.equal(out.stream.certificate, 'self-signed');
  assert.equal(certificatePin(readFileSync(join(hub, 'tls.crt'))), out.stream.pin);
  assert.equal(statSync(join(hub, 'tls.key')).mode & 0o777, 0o600);
  const join1 = cli('node', 'add', 'laptop', '--dir', hub, '--agent', '--join', '--json');
  assert.equal(join1.status, 0, join1.stderr);
  const code = decodeJoinCode((JSON.parse(join1.stdout) as { code: string }).code);
  assert.deepEqual(code.stream, { port: 443, pin: out.stream.pin });
  const add = cli('node', 'add', 'server', '--dir', hub, '--agent', '--json');
  assert.equal(add.status, 0, add.stderr);
  const files = (JSON.parse(add.stdout) as { files: { agentJson: string } }).files;
  const cfg = agentConfigSchema.parse(JSON.parse(readFileSync(files.agentJson, 'utf8')));
  assert.deepEqual(cfg.stream, { port: 443, pin: out.stream.pin });
});

test("--tcp-port, --no-tcp, and an operator's certificate (checked against its key)", async () => {
  const custom = init(join(dir, 'b'), '--tcp-port', '8443');
  assert.equal((JSON.parse(custom.stdout) as { stream: { port: number } }).stream.port, 8443);
  const off = join(dir, 'c');
  assert.equal(init(off, '--no-tcp').status, 0);
  const add = cli('node', 'add', 'server', '--dir', off, '--agent', '--json');
  const cfg = JSON.parse(readFileSync((JSON.parse(add.stdout) as { files: { agentJson: string } }).files.agentJson, 'utf8')) as { stream?: unknown };
  assert.equal(cfg.stream, undefined, 'a hub without a stream side tells nodes nothing about one');
  const mine = await generateTlsIdentity();
  const other = await generateTlsIdentity();
  writeFileSync(join(dir, 'cert.pem'), mine.cert);
  writeFileSync(join(dir, 'key.pem'), mine.key, { mode: 0o600 });
  writeFileSync(join(dir, 'other.pem'), other.key, { mode: 0o600 });
  const own = init(join(dir, 'd'), '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem'));
  assert.equal(own.status, 0, own.stderr);
  assert.deepEqual((JSON.parse(own.stdout) as { stream: unknown }).stream, { port: 443, pin: mine.pin, certificate: 'operator' });
  const wrong = init(join(dir, 'e'), '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'other.pem'));
  assert.notEqual(wrong.status, 0);
  assert.match(wrong.stderr, /does not belong to/);
  assert.equal(existsSync(join(dir, 'e')), false, 'nothing is created');
  const half = init(join(dir, 'f'), '--tls-cert', join(dir, 'cert.pem'));
  assert.match(half.stderr, /--tls-cert and --tls-key go together/);
  assert.equal(existsSync(join(dir, 'f')), false);
});
