import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { parseWgQuick } from '../../../src/core/wgquick.js';
import { clientListenPort, DISTINCT_CLIENT_PORTS } from '../../../src/hub/address-plan.js';
import { clientConfig, hubConfig, proxiedConfig } from '../../../src/hub/configs.js';
import { addNode, changeNode, hashToken } from '../../../src/hub/directory.js';
import { renderNodeConf, writeNodeFiles } from '../../../src/hub/files.js';
import { createStore, openStore, type DirectoryStore } from '../../../src/hub/store/store.js';
import { testHub } from './fixtures.js';

let dir: string;
let store: DirectoryStore;

async function freshStore(address = '10.99.0.1/24', proxiedSubnet?: string): Promise<void> {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
  dir = mkdtempSync(join(tmpdir(), 'wgp2p-dir-'));
  store = await createStore(dir, testHub(address, proxiedSubnet));
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgp2p-dir-'));
  store = await createStore(dir, testHub());
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const names = async () => (await store.listNodes()).map((n) => n.name);
const addressOf = async (name: string, kind: 'agent' | 'client' = 'client') => (await addNode(store, { name, kind })).node.address.toString();

test('addresses are allocated in order and proxied addresses mirror them', async () => {
  const a = (await addNode(store, { name: 'device', kind: 'agent' })).node;
  const c = (await addNode(store, { name: 'phone', kind: 'client' })).node;
  assert.equal(a.address.toString(), '10.99.0.2');
  assert.equal(c.address.toString(), '10.99.0.3');
  assert.equal(c.proxiedAddress?.toString(), '10.99.1.3');
  assert.equal(c.listenPort, 41003, 'clients get distinct listen ports');
  assert.deepEqual([a.hostNumber, c.hostNumber], [2, 3]);
});

test('allocation takes the lowest free address: a removed node\'s is reused, explicit ones are skipped', async () => {
  for (const n of ['a', 'b', 'c']) await addNode(store, { name: n, kind: 'client' });
  await store.removeNode('b');
  assert.equal(await addressOf('d'), '10.99.0.3', 'the free slot first');
  assert.equal(await addressOf('e'), '10.99.0.5');
  await addNode(store, { name: 'fixed', kind: 'client', address: '10.99.0.6' });
  await addNode(store, { name: 'fixed2', kind: 'client', address: '10.99.0.8' });
  assert.equal(await addressOf('f'), '10.99.0.7', 'between two explicit addresses');
  assert.equal(await addressOf('g'), '10.99.0.9', 'past them');
  await store.removeNode('a');
  await store.removeNode('e');
  assert.equal(await addressOf('h'), '10.99.0.2');
  assert.equal(await addressOf('i'), '10.99.0.5');
  assert.equal(await addressOf('j'), '10.99.0.10');
});

test('the hub\'s own address is never given out, wherever it is', async () => {
  await freshStore('10.99.0.4/24');
  assert.deepEqual([await addressOf('a'), await addressOf('b'), await addressOf('c')], ['10.99.0.2', '10.99.0.3', '10.99.0.5']);
});

test('a full network is refused with its name, and takes a node again once one is removed', async () => {
  await freshStore('10.99.0.1/29'); // hosts .1-.6; the hub is .1
  for (const n of ['a', 'b', 'c', 'd', 'e']) await addNode(store, { name: n, kind: 'client' });
  await assert.rejects(addNode(store, { name: 'f', kind: 'client' }), /the network 10\.99\.0\.0\/29 is full/);
  await store.removeNode('c');
  assert.equal(await addressOf('f'), '10.99.0.4');
  await assert.rejects(addNode(store, { name: 'g', kind: 'client' }), /is full/);
  assert.deepEqual(await names(), ['a', 'b', 'd', 'e', 'f']);
});

test('a proxied subnet smaller than the tunnel network: clients beyond it are refused, nothing is stored', async () => {
  await freshStore('10.99.0.1/24', '10.99.1.0/30');
  await addNode(store, { name: 'a', kind: 'client' });
  await addNode(store, { name: 'b', kind: 'client' });
  await assert.rejects(addNode(store, { name: 'c', kind: 'client' }), /the proxied subnet 10\.99\.1\.0\/30 has no address for host number 4 \(10\.99\.0\.4\)/);
  assert.equal(await addressOf('laptop', 'agent'), '10.99.0.4', 'an agent needs no proxied address');
  assert.deepEqual(await names(), ['a', 'b', 'laptop']);
});

test('client listen ports: 41000 + host number up to 65534, then down from 40999, valid and distinct for 64,510 host numbers', () => {
  assert.equal(clientListenPort(1), 41001);
  assert.equal(clientListenPort(3), 41003, 'the first release\'s rule');
  assert.equal(clientListenPort(24534), 65534);
  assert.equal(clientListenPort(24535), 40999);
  assert.equal(clientListenPort(32766), 40999 - (32766 - 24535), 'the last host of a /17');
  assert.equal(clientListenPort(30_000), 35534, 'host 30,000: 41000 + 30,000 would be 71000, past 65535 (issue 10, low)');
  assert.equal(clientListenPort(64510), 1024);
  assert.equal(clientListenPort(64511), 41001, 'beyond that the sequence repeats');
  assert.equal(DISTINCT_CLIENT_PORTS, 64510);
  const seen = new Set<number>();
  for (let h = 1; h <= 100_000; h++) {
    const p = clientListenPort(h);
    assert.ok(Number.isInteger(p) && p >= 1024 && p <= 65534, `host ${h}: port ${p}`);
    if (h <= DISTINCT_CLIENT_PORTS) seen.add(p);
  }
  assert.equal(seen.size, DISTINCT_CLIENT_PORTS);
  assert.throws(() => clientListenPort(0), RangeError);
});

test('bad input is refused with the problem named, and nothing is stored', async () => {
  await addNode(store, { name: 'device', kind: 'agent' });
  const cases: [Parameters<typeof addNode>[1], RegExp][] = [
    [{ name: 'Bad_Name', kind: 'client' }, /node name "Bad_Name" is invalid/],
    [{ name: 'a-name-that-is-too-long', kind: 'client' }, /is invalid: use 1-15/],
    [{ name: 'device', kind: 'client' }, /already exists/],
    [{ name: 'x', kind: 'client', address: '10.99.0.2' }, /already used by node "device"/],
    [{ name: 'x', kind: 'client', address: '10.99.0.1' }, /already used by the hub/],
    [{ name: 'x', kind: 'client', address: '10.98.0.5' }, /outside the network 10\.99\.0\.0\/24/],
    [{ name: 'x', kind: 'client', address: '10.99.0.255' }, /outside the network 10\.99\.0\.0\/24/],
    [{ name: 'x', kind: 'client', address: '10.99.0.300' }, /not an IPv4 address/],
    [{ name: 'x', kind: 'agent', endpoint: 'nohostport' }, /--endpoint "nohostport" must be HOST:PORT/],
    [{ name: 'x', kind: 'agent', routes: ['192.168.1.1/24'] }, /route "192\.168\.1\.1\/24" is not a subnet/],
    [{ name: 'x', kind: 'agent', routes: ['10.99.0.0/25'] }, /overlaps the tunnel network/],
  ];
  for (const [input, message] of cases) await assert.rejects(addNode(store, input), message);
  assert.deepEqual(await names(), ['device']);
});

test('node names that an interface, ip(8) or the relay pool already use are refused, naming the fix (issue 10, names)', async () => {
  const cases: [Parameters<typeof addNode>[1], RegExp][] = [
    [{ name: 'lo', kind: 'agent' }, /node name "lo" is invalid: "lo" is a system interface name .*; pick another/],
    [{ name: 'eth0', kind: 'agent' }, /"eth0" is a system interface name/],
    [{ name: 'wlan1', kind: 'client' }, /"wlan1" is a system interface name/],
    [{ name: 'wg0', kind: 'agent' }, /"wg0" is a system interface name/],
    [{ name: 'wgj4242', kind: 'agent' }, /"wgj4242" is a system interface name/],
    ...['dev', 'name', 'type', 'help', 'all', 'link', 'default'].map((w): [Parameters<typeof addNode>[1], RegExp] => [{ name: w, kind: 'agent' }, new RegExp(`"${w}" is a keyword of ip\\(8\\).*pick another`)]),
    [{ name: 'builtin', kind: 'relay' }, /"builtin" is the name of the hub's own relay; pick another/],
    [{ name: 'a..b', kind: 'agent' }, /node name "a\.\.b" is invalid: use 1-15 lower-case letters/],
    [{ name: '../../etc/x', kind: 'agent' }, /is invalid: use 1-15/],
    [{ name: 'a\nb', kind: 'agent' }, /node name "a\\nb" is invalid/],
    [{ name: 'x', kind: 'agent', endpoint: '999.1.1.1:5' }, /--endpoint "999\.1\.1\.1:5" must be HOST:PORT.*not an IPv4 address/],
    [{ name: 'x', kind: 'agent', endpoint: '999.999.999.999:99999' }, /out of range \(1-65535\)/],
    [{ name: 'x', kind: 'agent', endpoint: '198.51.100.7:0' }, /port 0 is out of range/],
  ];
  for (const [input, message] of cases) await assert.rejects(addNode(store, input), message);
  assert.deepEqual(await names(), []);
  // Names that merely contain those words stay valid, and "builtin" is only a relay's problem.
  for (const name of ['eth0-node', 'devbox', 'lo1', 'builtin']) await addNode(store, { name, kind: 'agent' });
  assert.deepEqual((await names()).sort(), ['builtin', 'devbox', 'eth0-node', 'lo1']);
});

test('agent files: token only as a hash in the store, files mode 0600', async () => {
  const { node, token } = await addNode(store, { name: 'device', kind: 'agent' });
  assert.ok(token && token.length >= 40);
  assert.equal(node.tokenHash, hashToken(token));
  const files = await writeNodeFiles(dir, store, node, token);
  for (const f of [files.conf, files.agentJson!]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
  const conf = parseWgQuick(readFileSync(files.conf, 'utf8'));
  assert.equal(conf.peers.length, 1, 'an agent config has only the hub as a peer');
  assert.deepEqual(conf.peers[0].allowedIps, ['10.99.0.1/32', 'fd3c:1a2b:3c4d::1/128', '10.99.1.0/24', 'fd3c:1a2b:3c4d:1::/64'], 'the hub and the proxied clients, both families');
  assert.equal(conf.peers[0].persistentKeepalive, 25);
});

test('client configs: P2P has hub + each agent at its endpoint; proxied has only the hub', async () => {
  await addNode(store, { name: 'device', kind: 'agent', endpoint: 'home.example.org:51820', routes: ['192.168.10.0/24'] });
  const c = (await addNode(store, { name: 'phone', kind: 'client' })).node;
  const hub = await store.hub();
  const agents = (await store.listNodes()).filter((n) => n.kind === 'agent');
  const p2p = clientConfig(hub, c, agents);
  assert.equal(p2p.interface.listenPort, 41003);
  assert.deepEqual(p2p.peers.map((p) => p.endpoint), ['203.0.113.2:51820', 'home.example.org:51820']);
  assert.deepEqual(p2p.peers[1].allowedIps, ['10.99.0.2/32', 'fd3c:1a2b:3c4d::2/128', '192.168.10.0/24']);
  assert.deepEqual(p2p.interface.address, ['10.99.0.3/24', 'fd3c:1a2b:3c4d::3/64'], 'an IPv4 and an IPv6 tunnel address: the ULA /64 + the host number');
  assert.equal(p2p.peers[0].persistentKeepalive, 1);
  const proxied = proxiedConfig(hub, c, agents);
  assert.equal(proxied.peers.length, 1);
  assert.deepEqual(proxied.peers[0].allowedIps, ['10.99.0.0/24', 'fd3c:1a2b:3c4d::/64', '10.99.1.0/24', 'fd3c:1a2b:3c4d:1::/64', '192.168.10.0/24']);
  assert.deepEqual(proxied.interface.address, ['10.99.1.3/24', 'fd3c:1a2b:3c4d:1::3/64']);
});

test('a client config lists only the agents sharing a group with it, joined ones, at the endpoint the hub observed', async () => {
  const home = (await addNode(store, { name: 'home', kind: 'agent', groups: ['family'] })).node;
  await addNode(store, { name: 'work', kind: 'agent', groups: ['work'] });
  await addNode(store, { name: 'both', kind: 'agent', groups: ['work', 'family'], endpoint: 'both.example.org:51820' });
  await addNode(store, { name: 'late', kind: 'agent', groups: ['family'], joinValidMs: 60_000 });
  await addNode(store, { name: 'relay1', kind: 'relay', groups: ['family'] });
  const phone = (await addNode(store, { name: 'phone', kind: 'client', groups: ['family'] })).node;
  await store.recordObservations([{ publicKey: home.publicKey, endpoint: Endpoint.parse('203.0.113.10:51820'), at: 1 }]);
  const conf = parseWgQuick(await renderNodeConf(store, phone));
  assert.equal(conf.peers[0].comment, 'hub');
  assert.deepEqual(
    conf.peers
      .slice(1)
      .map((p) => [p.comment, p.endpoint])
      .sort(),
    [
      ['agent both', 'both.example.org:51820'],
      ['agent home', '203.0.113.10:51820'],
    ],
  );
});

test('routes are checked both ways: supernets of the tunnel, default routes, the proxied subnets and another node\'s route are refused (issue 10, finding 3)', async () => {
  const refused: [string[], RegExp][] = [
    [['0.0.0.0/0'], /route 0\.0\.0\.0\/0 is a default route: .*exit node/],
    [['::/0'], /default route/],
    [['10.0.0.0/8'], /route 10\.0\.0\.0\/8 overlaps the tunnel network 10\.99\.0\.0\/24/],
    [['10.99.1.0/25'], /overlaps the proxied clients' network 10\.99\.1\.0\/24/],
    [['fd3c:1a2b:3c4d::/48'], /overlaps the tunnel's IPv6 network/],
    [['192.168.0.0/16', '192.168.5.0/24'], /routes 192\.168\.0\.0\/16 and 192\.168\.5\.0\/24 overlap/],
  ];
  for (const [routes, why] of refused) await assert.rejects(addNode(store, { name: 'x', kind: 'agent', routes }), why, routes.join());
  await addNode(store, { name: 'home', kind: 'agent', routes: ['192.168.10.0/24', '2001:db8:10::/64'] });
  await assert.rejects(addNode(store, { name: 'x', kind: 'agent', routes: ['192.168.0.0/16'] }), /route 192\.168\.0\.0\/16 overlaps 192\.168\.10\.0\/24, which node "home" routes already/);
  await assert.rejects(changeNode(store, 'home', { routes: ['10.0.0.0/8'] }), /overlaps the tunnel network/);
  assert.deepEqual((await changeNode(store, 'home', { routes: ['192.168.10.0/24', '192.168.11.0/24'] })).routes.map(String), ['192.168.10.0/24', '192.168.11.0/24'], 'a node may keep its own routes');
  assert.equal((await store.listNodes()).length, 1, 'nothing else was stored');
});

test('node set: groups, routes and proxied change live; a change names what is wrong', async () => {
  await addNode(store, { name: 'laptop', kind: 'agent' });
  await addNode(store, { name: 'phone', kind: 'client' });
  const n = await changeNode(store, 'laptop', { groups: ['a', 'b'], routes: ['192.168.5.0/24'], proxied: true });
  assert.deepEqual([n.groups, n.routes.map(String), n.proxied], [['a', 'b'], ['192.168.5.0/24'], true]);
  await assert.rejects(changeNode(store, 'nobody', { groups: ['a'] }), /no node named "nobody"/);
  await assert.rejects(changeNode(store, 'phone', { routes: ['192.168.6.0/24'] }), /--routes applies to agents only/);
  await assert.rejects(changeNode(store, 'laptop', { groups: ['Bad'] }), /group "Bad" is invalid/);
});

test('hub.conf lists no peers: the running hub admits nodes from the store', async () => {
  await addNode(store, { name: 'laptop', kind: 'agent' });
  const conf = hubConfig(await store.hub());
  assert.deepEqual(conf.peers, []);
  assert.deepEqual(conf.interface.address, ['10.99.0.1/24', 'fd3c:1a2b:3c4d::1/64', '10.99.1.1/24', 'fd3c:1a2b:3c4d:1::1/64']);
  assert.ok(conf.interface.postUp.includes('sysctl -q -w net.ipv6.conf.all.forwarding=1'), 'the hub forwards IPv6 for proxied clients too');
});

test('two node add at once (two processes, one address or one name): one wins, the other is told what was taken and what to do', async () => {
  const second = await openStore(dir);
  try {
    // Both pass their checks before either writes: what two `node add` processes racing see.
    const sameAddress = await Promise.allSettled([addNode(store, { name: 'x1', kind: 'client', address: '10.99.0.50' }), addNode(second, { name: 'x2', kind: 'client', address: '10.99.0.50' })]);
    assert.deepEqual(sameAddress.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    const lost = sameAddress.find((r) => r.status === 'rejected')!;
    assert.match(String(lost.reason), /--address 10\.99\.0\.50 (was taken by another node just now|is already used by node "x[12]"); pick another/, 'not "a node with this proxied address already exists"');

    const sameName = await Promise.allSettled([addNode(store, { name: 'dup', kind: 'agent' }), addNode(second, { name: 'dup', kind: 'agent' })]);
    assert.deepEqual(sameName.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    assert.match(String(sameName.find((r) => r.status === 'rejected')!.reason), /a node named "dup" already exists; remove it first or pick another name/);
    assert.deepEqual((await names()).sort(), ['dup', sameAddress[0].status === 'fulfilled' ? 'x1' : 'x2']);
  } finally {
    await second.close();
  }
});

test('node set from two processes at once: each change lands, none undoes the other', async () => {
  await addNode(store, { name: 'laptop', kind: 'agent' });
  const second = await openStore(dir);
  try {
    await Promise.all([changeNode(store, 'laptop', { groups: ['a', 'b'] }), changeNode(second, 'laptop', { proxied: true }), changeNode(store, 'laptop', { routes: ['192.168.5.0/24'] })]);
    const n = (await second.node('laptop'))!;
    assert.deepEqual([n.groups, n.proxied, n.routes.map(String)], [['a', 'b'], true, ['192.168.5.0/24']]);
  } finally {
    await second.close();
  }
});
