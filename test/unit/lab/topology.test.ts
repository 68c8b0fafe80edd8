import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { preflight } from '../../../src/lab/preflight.js';
import { decodePlan } from '../../../src/lab/plan.js';
import { loadTopology, parseTopology, TopologyError, type TopologyInput } from '../../../src/lab/topology.js';
import { familyTopology, matrixTopology } from '../../../src/lab/nat-matrix.js';
import { verifyTopology } from '../../../src/lab/truth-table.js';

const base = (): TopologyInput => ({
  name: 'unit',
  routers: [{ name: 'home', profile: 'restricted', wan: '203.0.113.10', lan: '192.168.1.0/24' }],
  hosts: [
    { name: 'hub', network: 'internet', address: '203.0.113.2' },
    { name: 'dev', network: 'home', address: '192.168.1.2', wireguard: { interface: 'wg-dev' } },
  ],
});

function rejects(mutate: (t: TopologyInput) => void, ...fragments: string[]): void {
  const t = base();
  mutate(t);
  assert.throws(
    () => parseTopology(t),
    (err: unknown) => {
      assert.ok(err instanceof TopologyError, String(err));
      for (const f of fragments) assert.match(err.message, new RegExp(f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      return true;
    },
  );
}

test('a valid topology becomes a plan with upstream routers first', () => {
  const plan = parseTopology(base());
  assert.equal(plan.routers[0].name, 'home');
  assert.equal(plan.routers[0].lan.subnets[0].gateway.toString(), '192.168.1.1');
  assert.equal(plan.routers[0].wan[0].toString(), '203.0.113.10');
  assert.deepEqual(plan.hosts.map((h) => h.addresses.map(String)), [['203.0.113.2'], ['192.168.1.2']]);
  assert.equal(plan.hosts[1].wireguard?.interface, 'wg-dev');
});

test('an unknown profile is named with the allowed ones', () => {
  rejects((t) => (t.routers![0].profile = 'fullcone' as never), 'routers[0].profile', 'open, firewall, cone');
});

test('a duplicate name is rejected', () => {
  rejects((t) => (t.hosts[1].name = 'hub'), 'hosts[1].name', '"hub" is already used by hosts[0]');
  rejects((t) => (t.hosts[1].name = 'home'), 'hosts[1].name', 'already used by routers[0]');
});

test('an overlapping subnet is rejected', () => {
  rejects((t) => t.routers!.push({ name: 'cafe', profile: 'cone', wan: '203.0.113.11', lan: '192.168.0.0/16' }), 'routers[1].lan', 'overlaps routers[0].lan');
  rejects((t) => (t.routers![0].lan = '203.0.113.128/25'), 'overlaps internet.subnet');
});

test('an address outside its subnet is rejected', () => {
  rejects((t) => (t.hosts[1].address = '192.168.2.2'), 'hosts[1].address', 'outside home');
  rejects((t) => (t.routers![0].wan = '198.51.100.1'), 'routers[0].wan', 'outside internet');
  rejects((t) => (t.hosts[1].address = '192.168.1.1'), 'gateway');
  rejects((t) => (t.hosts[0].address = '203.0.113.10'), 'already used by routers[0].wan');
});

test('an interface name longer than 15 characters is rejected', () => {
  rejects((t) => (t.hosts[1].wireguard = { interface: 'wg-much-too-long-name' }), 'hosts[1].wireguard.interface', '15 characters');
});

test('WireGuard interface names must be unique across the lab', () => {
  rejects((t) => (t.hosts[0].wireguard = { interface: 'wg-dev' }), 'unique across the lab');
});

test('other mistakes are named with their field', () => {
  rejects((t) => (t.hosts[1].network = 'nowhere'), 'hosts[1].network', 'no router is named "nowhere"');
  rejects((t) => (t.routers![0].upstream = 'home'), 'routers form a loop');
  rejects((t) => ((t as Record<string, unknown>).extra = 1), 'extra');
  rejects((t) => (t.name = 'Bad-Name'), 'name');
  rejects((t) => (t.routers![0].lan = '192.168.1.1/24'), 'routers[0].lan', 'has host bits set; the subnet is 192.168.1.0/24');
  rejects((t) => (t.hosts[1].address = '192.168.1.02'), 'hosts[1].address', 'is not an IPv4 address');
  rejects((t) => (t.routers![0].upnp = true), 'routers[0].upnp', 'reserved WAN address');
});

test('cgnat expands into a carrier NAT in front of a home NAT', () => {
  const t = base();
  t.routers![0].profile = 'cgnat';
  const plan = parseTopology(t);
  assert.deepEqual(plan.routers.map((r) => [r.name, r.upstream, r.nat]), [
    ['home-cgn', 'internet', 'restricted'],
    ['home', 'home-cgn', 'restricted'],
  ]);
  (t.routers![0] as { carrier?: string }).carrier = 'symmetric';
  assert.deepEqual(parseTopology(t).routers.map((r) => [r.name, r.nat]), [['home-cgn', 'symmetric'], ['home', 'restricted']], 'a mobile carrier that maps per destination');
  t.routers![0].profile = 'restricted';
  assert.throws(() => parseTopology(t), /routers\[0\]\.carrier: only a cgnat router has a carrier NAT/);
});

test('every shipped topology and the verify topology are valid', async () => {
  const dir = new URL('../../../../topologies/', import.meta.url);
  const files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f));
  assert.ok(files.includes('seed000.yaml'));
  for (const f of files) await loadTopology(new URL(f, dir).pathname);
  parseTopology(verifyTopology('v'));
  parseTopology(matrixTopology('m'));
  const fam = parseTopology(familyTopology('f'));
  assert.deepEqual(fam.hosts.filter((h) => h.addresses.every((a) => a.family === 6)).map((h) => h.name), ['v6a', 'v6b'], 'the family matrix has two IPv6-only hosts');
  const ds = await loadTopology(new URL('dualstack.yaml', dir).pathname);
  assert.deepEqual(ds.hosts.find((h) => h.name === 'phone')!.addresses.map(String), ['2001:db8:20::3']);
  assert.equal(ds.routers.find((r) => r.name === 'cafe')!.ipv6, undefined);
});

test('preflight names the package that provides a missing tool, and refuses non-root', () => {
  assert.throws(() => preflight(['wireguard-go', 'conntrack'], { searchPath: '/nonexistent', uid: 0 }), /apt-get install -y wireguard-go conntrack/);
  assert.throws(() => preflight(['ip'], { uid: 1000 }), /must run as root/);
});

test('a plan survives the lab record: written as JSON text, decoded to the same values', () => {
  const t = base();
  t.routers!.push({ name: 'isp', profile: 'cgnat', wan: '203.0.113.20', lan: '192.168.2.0/24' }, { name: 'dc', profile: 'cone', wan: '203.0.113.30', lan: '192.168.3.0/24' });
  t.hosts.push({ name: 'srv', network: 'dc', address: '192.168.3.9' });
  const plan = parseTopology(t);
  const stored = JSON.parse(JSON.stringify(plan)) as unknown;
  assert.equal((stored as { hosts: { addresses: unknown[] }[] }).hosts[1].addresses[0], '192.168.1.2', 'addresses are stored as their text');
  const back = decodePlan(stored);
  assert.ok(back);
  assert.equal(JSON.stringify(back), JSON.stringify(plan));
  assert.ok(back.routers.find((r) => r.name === 'dc')!.exposedHost!.equals(plan.hosts[2].addresses[0]));
  assert.equal(back.routers.find((r) => r.name === 'isp')!.wan[0].toString(), '100.64.1.2', 'the home NAT of a cgnat router sits on the carrier network');
  assert.equal(decodePlan({ ...plan, hosts: [{ name: 'x', network: 'internet', address: 3405803778 }] }), undefined, 'a record from the numbers era is refused');
});

/** A home router with IPv6 beside its IPv4 NAT: a dual-stack host, an IPv6-only host, a dual-stack hub. */
const dual = (): TopologyInput => ({
  name: 'unit6',
  internet: { subnet: '203.0.113.0/24', subnet6: '2001:db8::/64' },
  routers: [{ name: 'home', profile: 'restricted', wan: '203.0.113.10', lan: '192.168.1.0/24', ipv6: { prefix: '2001:db8:10::/48' } }],
  hosts: [
    { name: 'hub', network: 'internet', address: '203.0.113.2', address6: '2001:db8::2' },
    { name: 'dev', network: 'home', address: '192.168.1.2', address6: '2001:db8:10::2' },
    { name: 'phone', network: 'home', address6: '2001:db8:10::3' },
  ],
});

function rejects6(mutate: (t: TopologyInput) => void, ...fragments: string[]): void {
  const t = dual();
  mutate(t);
  assert.throws(
    () => parseTopology(t),
    (err: unknown) => {
      assert.ok(err instanceof TopologyError, String(err));
      for (const f of fragments) assert.ok(err.message.includes(f), `"${f}" is not in:\n${err.message}`);
      return true;
    },
  );
}

test('a dual-stack lab: the internet and the router get an IPv6 subnet, the router its prefix and firewall, hosts one address per family', () => {
  const plan = parseTopology(dual());
  assert.deepEqual(plan.internet.subnets.map((s) => [String(s.subnet), String(s.gateway)]), [['203.0.113.0/24', '203.0.113.1'], ['2001:db8::/64', '2001:db8::1']]);
  const home = plan.routers[0];
  assert.deepEqual(home.lan.subnets.map((s) => [String(s.subnet), String(s.gateway)]), [['192.168.1.0/24', '192.168.1.1'], ['2001:db8:10::/64', '2001:db8:10::1']], "the LAN is the prefix's first /64");
  assert.equal(String(home.ipv6?.prefix), '2001:db8:10::/48', 'the whole prefix is routed to the router');
  assert.equal(home.ipv6?.firewall, 'stateful', 'a home router lets only replies in unless told otherwise');
  assert.deepEqual(home.wan.map(String), ['203.0.113.10', '2001:db8::a'], "the IPv6 WAN address defaults to the IPv4 WAN's host number (10) in the internet's IPv6 subnet");
  assert.deepEqual(plan.hosts.map((h) => h.addresses.map(String)), [['203.0.113.2', '2001:db8::2'], ['192.168.1.2', '2001:db8:10::2'], ['2001:db8:10::3']]);
});

test('IPv6 fields: an explicit WAN address, an open firewall, and the internet subnet6 defaulted only when IPv6 is asked for', () => {
  const t = dual();
  delete t.internet!.subnet6;
  t.routers![0].ipv6 = { prefix: '2001:db8:10::/64', wan: '2001:db8::99', firewall: 'open' };
  const plan = parseTopology(t);
  assert.deepEqual(plan.internet.subnets.map((s) => String(s.subnet)), ['203.0.113.0/24', '2001:db8::/64']);
  assert.deepEqual(plan.routers[0].wan.map(String), ['203.0.113.10', '2001:db8::99']);
  assert.equal(plan.routers[0].ipv6?.firewall, 'open');
  assert.deepEqual(parseTopology(base()).internet.subnets.map((s) => String(s.subnet)), ['203.0.113.0/24'], 'an IPv4 topology gets no IPv6 anywhere');
  assert.equal(parseTopology(base()).routers[0].ipv6, undefined);
});

test('an address or subnet in the field of the other family is refused with the field it belongs in', () => {
  rejects6((t) => (t.hosts[1].address = '2001:db8:10::5'), 'hosts[1].address: must be an IPv4 address', 'an IPv6 address goes in address6');
  rejects6((t) => (t.hosts[1].address6 = '192.168.1.5'), 'hosts[1].address6: must be an IPv6 address', 'an IPv4 address goes in address');
  rejects6((t) => (t.routers![0].wan = '2001:db8::10'), 'routers[0].wan: must be an IPv4 address', 'goes in ipv6.wan');
  rejects6((t) => (t.routers![0].lan = '2001:db8:10::/64'), 'routers[0].lan: must be an IPv4 subnet', 'goes in ipv6.prefix');
  rejects6((t) => (t.internet!.subnet = '2001:db8::/64'), 'internet.subnet: must be an IPv4 subnet', 'goes in subnet6');
  rejects6((t) => (t.internet!.subnet6 = '198.51.100.0/24'), 'internet.subnet6: must be an IPv6 prefix');
  rejects6((t) => (t.routers![0].ipv6!.prefix = '10.0.0.0/8'), 'routers[0].ipv6.prefix: must be an IPv6 prefix');
  rejects6((t) => (t.routers![0].ipv6!.wan = '203.0.113.99'), 'routers[0].ipv6.wan: must be an IPv6 address');
});

test('an IPv6 address where the network has no IPv6 is refused with how to give it some', () => {
  rejects6((t) => delete t.routers![0].ipv6, 'hosts[1].address6: 2001:db8:10::2 is IPv6 and home has no IPv6 subnet', 'give router "home" an IPv6 prefix');
  // A host's address6 alone asks for IPv6: the internet then gets the default subnet6.
  const t = dual();
  delete t.routers![0].ipv6;
  delete t.internet!.subnet6;
  t.hosts = [t.hosts[0]];
  assert.deepEqual(parseTopology(t).internet.subnets.map((s) => String(s.subnet)), ['203.0.113.0/24', '2001:db8::/64']);
});

test('a host needs at least one address; alone, address6 makes it IPv6-only', () => {
  rejects6((t) => delete t.hosts[2].address6, 'hosts[2].address: missing', 'address6 (IPv6; alone, the host is IPv6-only)');
});

test('a routed IPv6 prefix must be global, at most /64, and not overlap anything', () => {
  rejects6((t) => (t.routers![0].ipv6!.prefix = 'fd00:10::/48'), 'routers[0].ipv6.prefix: fd00:10::/48 is a unique-local address', 'use global space such as 2001:db8::/32');
  rejects6((t) => (t.routers![0].ipv6!.prefix = 'fe80::/64'), 'routers[0].ipv6.prefix: fe80::/64 is a link-local address');
  rejects6((t) => (t.internet!.subnet6 = 'fd00::/64'), 'internet.subnet6: fd00::/64 is a unique-local address');
  rejects6((t) => (t.routers![0].ipv6!.prefix = '2001:db8:10::/80'), 'routers[0].ipv6.prefix: 2001:db8:10::/80 is longer than /64', 'give a /64 or shorter');
  rejects6((t) => (t.routers![0].ipv6!.prefix = '2001:db8::/48'), 'routers[0].ipv6.prefix: 2001:db8::/48 overlaps internet.subnet6 (2001:db8::/64)');
  rejects6(
    (t) => t.routers!.push({ name: 'cafe', profile: 'restricted', wan: '203.0.113.20', lan: '192.168.2.0/24', ipv6: { prefix: '2001:db8:10:5::/64' } }),
    'routers[1].ipv6.prefix: 2001:db8:10:5::/64 overlaps routers[0].ipv6.prefix (2001:db8:10::/48)',
  );
  rejects6((t) => (t.routers![0].ipv6!.prefix = '2001:db8:10::1/48'), 'routers[0].ipv6.prefix', 'has host bits set; the subnet is 2001:db8:10::/48');
});

test('IPv6 addresses must be usable on their segment', () => {
  rejects6((t) => (t.hosts[1].address6 = '2001:db8:10:1::2'), "hosts[1].address6: 2001:db8:10:1::2 is outside home's subnet 2001:db8:10::/64");
  rejects6((t) => (t.hosts[1].address6 = '2001:db8:10::1'), "hosts[1].address6: 2001:db8:10::1 is home's gateway address");
  rejects6((t) => (t.hosts[1].address6 = '2001:db8:10::'), 'is outside home\'s subnet 2001:db8:10::/64 or is its network/broadcast address');
  rejects6((t) => (t.hosts[0].address6 = '2001:db8::a'), 'hosts[0].address6: 2001:db8::a is already used by routers[0].ipv6.wan (default 2001:db8::a)');
  rejects6((t) => (t.routers![0].ipv6!.wan = '2001:db9::10'), "routers[0].ipv6.wan: 2001:db9::10 is outside internet's subnet 2001:db8::/64");
  rejects6((t) => (t.hosts[2].address6 = '2001:db8:10::2'), 'hosts[2].address6: 2001:db8:10::2 is already used by hosts[1].address6');
  rejects6((t) => (t.hosts[1].address6 = '2001:db8:10::2%eth0'), 'hosts[1].address6', 'zone index');
});

test('IPv6 only where the lab can build it, with fields it knows', () => {
  rejects6((t) => (t.routers![0].ipv6 = { prefix: '2001:db8:10::/48', firewall: 'nat66' as never }), 'routers[0].ipv6.firewall: must be one of stateful, open');
  rejects6((t) => ((t.routers![0].ipv6 as Record<string, unknown>).pd = true), 'routers[0].ipv6', 'pd');
  rejects6((t) => (t.routers![0].profile = 'cgnat'), 'routers[0].ipv6: only a router on the internet gets an IPv6 prefix', 'is a cgnat router');
  rejects6(
    (t) => t.routers!.push({ name: 'inner', profile: 'restricted', upstream: 'home', wan: '192.168.1.50', lan: '192.168.2.0/24', ipv6: { prefix: '2001:db8:20::/48' } }),
    'routers[1].ipv6: only a router on the internet gets an IPv6 prefix (this one sits behind "home"); remove ipv6, or remove upstream',
  );
  rejects6((t) => {
    t.routers![0].profile = 'cone';
    t.routers![0].exposedHost = 'phone';
  }, 'routers[0].exposedHost: "phone" has no IPv4 address for the NAT to forward to');
});

test('a cone router exposes its first host with IPv4 by default, skipping IPv6-only ones', () => {
  const t = dual();
  t.routers![0].profile = 'cone';
  t.hosts = [t.hosts[0], t.hosts[2], t.hosts[1]];
  assert.equal(String(parseTopology(t).routers[0].exposedHost), '192.168.1.2');
});

test('a dual-stack plan survives the lab record', () => {
  const plan = parseTopology(dual());
  const back = decodePlan(JSON.parse(JSON.stringify(plan)) as unknown);
  assert.ok(back);
  assert.equal(JSON.stringify(back), JSON.stringify(plan));
  assert.ok(back.routers[0].ipv6?.prefix.equals(plan.routers[0].ipv6!.prefix));
  assert.equal(back.hosts[2].addresses[0].family, 6);
});
