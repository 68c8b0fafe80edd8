import { Endpoint } from '../../../src/core/net/endpoint.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { run } from '../../../src/core/exec.js';
import { uapiSocketPath } from '../../../src/core/wireguard/uapi.js';
import { Lab, labNamespace } from '../../../src/lab/lab.js';
import { listNamespaces } from '../../../src/lab/netns.js';
import { readState } from '../../../src/lab/state.js';
import { iperf3, msUntilPingReply, readDevice, startWireGuard, waitForHandshake } from '../../../src/lab/wireguard.js';
import { uniqueIfname, uniqueLabName, withLab } from '../helpers.js';
import { setDevice } from '../../../src/core/wireguard/uapi.js';
import { parseTopology } from '../../../src/lab/topology.js';

const twoHomes = (name: string) => ({
  name,
  routers: [
    { name: 'home', profile: 'restricted' as const, wan: '203.0.113.10', lan: '192.168.1.0/24' },
    { name: 'cafe', profile: 'restricted' as const, wan: '203.0.113.20', lan: '192.168.2.0/24' },
  ],
  hosts: [
    { name: 'hub', network: 'internet', address: '203.0.113.2' },
    { name: 'dev', network: 'home', address: '192.168.1.2' },
  ],
});

test('lab traffic stays inside the lab: private LANs are unreachable from the internet and nothing routes out', async () => {
  await withLab(twoHomes(uniqueLabName('iso')), async (lab) => {
    assert.equal((await lab.exec('dev', 'ping', ['-c1', '-W1', '203.0.113.2'], { allowFail: true })).code, 0);
    assert.notEqual((await lab.exec('hub', 'ping', ['-c1', '-W1', '192.168.1.2'], { allowFail: true })).code, 0);
    const routes = (await lab.exec('internet', 'ip', ['route'])).stdout;
    assert.doesNotMatch(routes, /default/, 'the internet core must have no default route out of the lab');
  });
});

test('WireGuard through a home NAT: handshake, endpoint, first ping, roaming and iperf3', async () => {
  const hubIf = uniqueIfname('wth');
  const devIf = uniqueIfname('wtd');
  await withLab(twoHomes(uniqueLabName('wg')), async (lab) => {
    const hub = await startWireGuard(lab.ns('hub'), hubIf, { listenPort: 51820, address: '10.77.0.1/24' });
    await lab.recordWireGuard('hub', hubIf);
    await lab.startWireGuard('dev', devIf, { address: '10.77.0.2/24', listenPort: 41000 });
    const dev = await readDevice(devIf);
    assert.equal(dev.listenPort, 41000);
    const devKey = (await lab.exec('dev', 'wg', ['show', devIf, 'public-key'])).stdout.trim();
    await setDevice(hubIf, { peers: [{ publicKey: devKey, allowedIps: ['10.77.0.2/32'] }] });
    await setDevice(devIf, { peers: [{ publicKey: hub.publicKey, endpoint: Endpoint.parse('203.0.113.2:51820'), allowedIps: ['10.77.0.1/32'], persistentKeepalive: 1 }] });

    await waitForHandshake(hubIf, devKey, 5000);
    const seen = (await readDevice(hubIf)).peers.find((p) => p.publicKey === devKey);
    assert.equal(seen?.endpoint?.toString(), '203.0.113.10:41000', 'the hub sees the NAT-mapped endpoint of the device (port kept)');

    const ms = await msUntilPingReply(lab.ns('hub'), '10.77.0.2', 5000);
    assert.ok(ms >= 0);

    const newAddr = await lab.moveHost('dev', 'cafe');
    assert.equal(newAddr, '192.168.2.2');
    assert.equal(lab.publicAddress('dev'), '203.0.113.20');
    await msUntilPingReply(lab.ns('dev'), '10.77.0.1', 5000);
    const roamed = (await readDevice(hubIf)).peers.find((p) => p.publicKey === devKey);
    assert.equal(roamed?.endpoint?.toString(), '203.0.113.20:41000', 'after roaming the hub sees the new NAT');

    const perf = await iperf3(lab.ns('hub'), lab.ns('dev'), '10.77.0.1', 1);
    assert.ok(perf.bitsPerSecond > 1e6, `iperf3 over the tunnel carried ${perf.bitsPerSecond} bit/s`);
  });
  assert.ok(!existsSync(uapiSocketPath(hubIf)) && !existsSync(uapiSocketPath(devIf)), 'teardown removes the UAPI sockets');
  assert.equal((await run('pgrep', ['-f', `wireguard-go -f ${devIf}`], { allowFail: true })).code, 1, 'teardown stops wireguard-go');
});

test('down removes a lab whose record was lost (a crashed run), found by its namespace prefix', async () => {
  const name = uniqueLabName('crash');
  const lab = await Lab.up(parseTopology(twoHomes(name)));
  try {
    await run('rm', ['-f', `/run/wgp2p/labs/${name}.json`]);
    assert.equal(await readState(name), undefined);
    const removed = await Lab.destroy(name);
    assert.equal(removed.length, 5);
    assert.deepEqual((await listNamespaces()).filter((n) => n.startsWith(labNamespace(name, ''))), []);
  } finally {
    await lab.down();
  }
});

test('a lab that fails half-way is removed completely', async () => {
  const name = uniqueLabName('half');
  const t = twoHomes(name);
  // Two hosts with one WireGuard interface name that already exists: the second start fails mid-build.
  const ifname = uniqueIfname('wtx');
  const other = await Lab.up(parseTopology({ name: uniqueLabName('own'), hosts: [{ name: 'x', network: 'internet', address: '203.0.113.9', wireguard: { interface: ifname } }] }));
  try {
    const bad = { ...t, hosts: [...t.hosts, { name: 'late', network: 'home', address: '192.168.1.9', wireguard: { interface: ifname } }] };
    await assert.rejects(Lab.up(parseTopology(bad)), /already exists/);
    assert.deepEqual((await listNamespaces()).filter((n) => n.startsWith(labNamespace(name, ''))), []);
    assert.equal(await readState(name), undefined);
  } finally {
    await other.down();
  }
});

const dualStack = (name: string) => ({
  name,
  internet: { subnet: '203.0.113.0/24', subnet6: '2001:db8::/64' },
  routers: [
    { name: 'home', profile: 'restricted' as const, wan: '203.0.113.10', lan: '192.168.1.0/24', ipv6: { prefix: '2001:db8:10::/48' } },
    { name: 'cafe', profile: 'restricted' as const, wan: '203.0.113.20', lan: '192.168.2.0/24' },
  ],
  hosts: [
    { name: 'hub', network: 'internet', address: '203.0.113.2', address6: '2001:db8::2' },
    { name: 'dev', network: 'home', address: '192.168.1.2', address6: '2001:db8:10::2' },
    { name: 'phone', network: 'home', address6: '2001:db8:10::3' },
    { name: 'guest', network: 'cafe', address: '192.168.2.2' },
  ],
});

test('a dual-stack lab: IPv6 routed and firewalled, IPv6-only and IPv4-only hosts without the other family, tunnels carry IPv6 everywhere', async () => {
  const guestIf = uniqueIfname('wt6');
  await withLab(dualStack(uniqueLabName('ds')), async (lab) => {
    // Five tries: the first IPv6 packet waits for neighbour discovery on each hop, which a loaded
    // machine can stretch past a second. ping exits 0 once any reply came.
    const ping = async (node: string, target: string) => (await lab.exec(node, 'ping', ['-n', '-c5', '-i0.2', '-W1', target], { allowFail: true })).code === 0;
    assert.ok(await ping('dev', '2001:db8::2'), 'a dual-stack host reaches the hub over IPv6');
    assert.ok(await ping('dev', '203.0.113.2'), '… and over IPv4');
    assert.ok(!(await ping('hub', '2001:db8:10::2')), 'the stateful firewall drops what nobody inside asked for');
    assert.ok(await ping('phone', '2001:db8::2'), 'an IPv6-only host reaches the hub over IPv6');
    assert.ok(!(await ping('phone', '203.0.113.2')), '… and has no IPv4 path');
    assert.equal((await lab.exec('phone', 'ip', ['-4', 'addr', 'show', 'dev', 'eth0'])).stdout.trim(), '', 'no IPv4 address on an IPv6-only host');
    assert.equal((await lab.exec('phone', 'ip', ['-4', 'route'])).stdout.trim(), '', 'no IPv4 route on an IPv6-only host');
    assert.ok(!(await ping('guest', '2001:db8::2')), 'a network without IPv6 has no IPv6 path');
    assert.equal((await lab.exec('guest', 'ip', ['-6', 'addr', 'show', 'dev', 'eth0'])).stdout.trim(), '', 'not even a link-local address on a link without IPv6');
    assert.doesNotMatch((await lab.exec('cafe', 'ip', ['-6', 'addr'])).stdout, /inet6/, 'a router without IPv6 runs none');
    for (const family of ['-4', '-6']) assert.doesNotMatch((await lab.exec('internet', 'ip', [family, 'route'])).stdout, /default/, `the internet core has no ${family} default route out of the lab`);
    // wg-quick adds the node's IPv6 tunnel address: that must work on an IPv4-only network too.
    await lab.startWireGuard('guest', guestIf, { address: 'fd00:77::2/64' });
    assert.match((await lab.exec('guest', 'ip', ['-6', 'addr', 'show', 'dev', guestIf])).stdout, /fd00:77::2\/64/);
    assert.deepEqual(lab.publicAddresses('dev'), ['203.0.113.10', '2001:db8:10::2'], 'IPv4 through the NAT, IPv6 its own');
    assert.deepEqual(lab.publicAddresses('phone'), ['2001:db8:10::3']);

    // Roaming takes the families of the new network: none of IPv6 in the cafe, both at home.
    await lab.moveHost('dev', 'cafe');
    assert.deepEqual(lab.host('dev').addresses.map(String), ['192.168.2.3']);
    assert.ok(!(await ping('dev', '2001:db8::2')));
    assert.equal((await lab.exec('dev', 'ip', ['-6', 'addr', 'show', 'dev', 'eth0'])).stdout.trim(), '');
    await lab.moveHost('dev', 'home');
    assert.deepEqual(lab.host('dev').addresses.map(String), ['192.168.1.2', '2001:db8:10::2']);
    assert.ok(await ping('dev', '2001:db8::2'), 'back home, IPv6 works again at once (no DAD wait)');
  });
});
