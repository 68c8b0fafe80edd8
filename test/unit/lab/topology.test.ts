import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { preflight } from '../../../src/lab/preflight.js';
import { decodePlan } from '../../../src/lab/plan.js';
import { loadTopology, parseTopology, TopologyError, type TopologyInput } from '../../../src/lab/topology.js';
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
});

test('every shipped topology and the verify topology are valid', async () => {
  const dir = new URL('../../../../topologies/', import.meta.url);
  const files = readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f));
  assert.ok(files.includes('seed000.yaml'));
  for (const f of files) await loadTopology(new URL(f, dir).pathname);
  parseTopology(verifyTopology('v'));
});

test('preflight names the package that provides a missing tool, and refuses non-root', () => {
  assert.throws(() => preflight(['wireguard-go', 'conntrack'], { searchPath: '/nonexistent', uid: 0 }), /apt-get install -y wireguard-go conntrack/);
  assert.throws(() => preflight(['ip'], { uid: 1000 }), /must run as root/);
});

test('the lab builds IPv4 only for now: an IPv6 address or subnet is refused by name, not half-built', () => {
  rejects((t) => (t.hosts[0].address = '2001:db8::2'), 'hosts[0].address', 'IPv4 networks only');
  rejects((t) => (t.routers![0].lan = 'fd00:1::/64'), 'routers[0].lan', 'IPv4 networks only');
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
