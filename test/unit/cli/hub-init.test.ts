import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));

test('hub init refuses what would make addresses collide or nodes unreachable, before creating anything', () => {
  const cases: [string[], RegExp][] = [
    [['--endpoint', '203.0.113.2:51820', '--address', '10.99.0.1/24', '--proxied-subnet', '10.98.0.0/25'], /--proxied-subnet 10\.98\.0\.0\/25 is smaller than the tunnel network 10\.99\.0\.0\/24; give a \/24/],
    [['--endpoint', '203.0.113.2:51820', '--endpoint', '203.0.113.3:51820', '--address', '10.99.0.1/24'], /two IPv4 addresses; give one IPv4 and one IPv6 endpoint/],
    [['--endpoint', '[2001:db8::2]:51820', '--endpoint', '[2001:db8::3]:51820', '--address', '10.99.0.1/24'], /two IPv6 addresses/],
    [['--endpoint', '2001:db8::2:51820', '--address', '10.99.0.1/24'], /needs brackets/],
    [['--endpoint', '[fe80::2]:51820', '--address', '10.99.0.1/24'], /link-local/],
    [['--endpoint', '203.0.113.2:51820', '--address', '10.99.0.1/24', '--address6', 'fd12::/56'], /--address6 .*is a \/56; the tunnel's IPv6 network is a \/64/],
    [['--endpoint', '203.0.113.2:51820', '--address', '10.99.0.1/24', '--address6', '2001:db8:1::/64'], /not in fd00::\/8/],
  ];
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-init-'));
  try {
    for (const [args, message] of cases) {
      const hub = join(dir, 'hub');
      const r = spawnSync(process.execPath, [CLI, 'hub', 'init', '--dir', hub, ...args], { encoding: 'utf8' });
      assert.notEqual(r.status, 0, args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
      assert.equal(existsSync(hub), false, 'nothing is created');
    }
    const ok = spawnSync(process.execPath, [CLI, 'hub', 'init', '--dir', join(dir, 'hub'), '--endpoint', '203.0.113.2:51820', '--endpoint', '[2001:db8::2]:51820', '--address', '10.99.0.1/24', '--address6', 'fd12:3456:789a::/64', '--json'], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    const out = JSON.parse(ok.stdout) as { endpoints: string[]; address6: string; proxiedSubnet6: string };
    assert.deepEqual(out.endpoints, ['203.0.113.2:51820', '[2001:db8::2]:51820']);
    assert.equal(out.address6, 'fd12:3456:789a::1/64', 'the hub keeps its host number (.1) in IPv6');
    assert.equal(out.proxiedSubnet6, 'fd12:3456:789a:1::/64');
  } finally {
    rmSync(dir, { recursive: true });
  }
});
