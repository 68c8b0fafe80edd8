import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { certificatePin, generateTlsIdentity, isPin, loadTlsIdentity, TlsIdentityError } from '../../../src/core/stream/tls-identity.js';

const dir = mkdtempSync(join(tmpdir(), 'wgp2p-tls-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a generated identity is a certificate and its key, pinned by the SHA-256 of its public key', async () => {
  const a = await generateTlsIdentity();
  const b = await generateTlsIdentity();
  assert.match(a.cert, /^-----BEGIN CERTIFICATE-----/);
  assert.match(a.key, /^-----BEGIN PRIVATE KEY-----/);
  assert.ok(isPin(a.pin), a.pin);
  assert.equal(certificatePin(a.cert), a.pin);
  assert.notEqual(a.pin, b.pin, 'each hub its own key');
});

test("an operator's certificate is loaded and pinned; a key of another certificate, or no certificate, is refused by name", async () => {
  const a = await generateTlsIdentity();
  const b = await generateTlsIdentity();
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  writeFileSync(cert, a.cert);
  writeFileSync(key, a.key, { mode: 0o600 });
  assert.equal(loadTlsIdentity(cert, key).pin, a.pin);
  writeFileSync(key, b.key, { mode: 0o600 });
  assert.throws(() => loadTlsIdentity(cert, key), (e: unknown) => e instanceof TlsIdentityError && /does not belong to/.test(e.message));
  writeFileSync(cert, 'hello');
  assert.throws(() => loadTlsIdentity(cert, key), /not an X.509 certificate/);
  assert.throws(() => loadTlsIdentity(join(dir, 'absent.pem'), key), /cannot read the TLS certificate .*ENOENT/);
  assert.equal(statSync(key).mode & 0o077, 0);
});

test('pins: the prefix and 32 bytes of base64, nothing else', () => {
  assert.equal(isPin('sha256/' + Buffer.alloc(32, 7).toString('base64')), true);
  assert.equal(isPin(Buffer.alloc(32, 7).toString('base64')), false);
  assert.equal(isPin('sha256/' + Buffer.alloc(31, 7).toString('base64')), false);
  assert.equal(isPin('sha256/' + Buffer.alloc(32, 7).toString('hex')), false);
});
