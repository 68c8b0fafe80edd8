import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const wgp2p = (...args: string[]) => execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, WGP2P_LOG: 'silent' } });

test('node add --qr-png and --qr-svg write the config (a private key) 0600, also over an existing wider file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-cli-'));
  try {
    wgp2p('hub', 'init', '--dir', join(dir, 'hub'), '--endpoint', '203.0.113.2:51820', '--endpoint', '[2001:db8::2]:51820', '--address', '10.99.0.1/24', '--json');
    const png = join(dir, 'phone.png');
    writeFileSync(png, '', { mode: 0o644 });
    wgp2p('node', 'add', 'phone', '--client', '--dir', join(dir, 'hub'), '--qr-png', png, '--qr-svg', join(dir, 'phone.svg'), '--json');
    assert.equal(statSync(png).mode & 0o777, 0o600, 'issue 10, finding 12: the PNG was 0644');
    assert.equal(statSync(join(dir, 'phone.svg')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'hub', 'nodes', 'phone.conf')).mode & 0o777, 0o600);
    const conf = wgp2p('node', 'config', 'phone', '--dir', join(dir, 'hub'));
    assert.match(conf, /Address = 10\.99\.0\.2\/24, fd[0-9a-f]{2}:[0-9a-f:]+::2\/64/, 'both tunnel addresses');
    assert.match(conf, /Endpoint = 203\.0\.113\.2:51820/, "the hub's first endpoint");
    wgp2p('node', 'set', 'phone', '--dir', join(dir, 'hub'), '--hub-endpoint', '[2001:db8::2]:51820');
    assert.match(wgp2p('node', 'config', 'phone', '--dir', join(dir, 'hub')), /Endpoint = \[2001:db8::2\]:51820/, 'a phone on an IPv6-only network gets the IPv6 one');
  } finally {
    rmSync(dir, { recursive: true });
  }
});
