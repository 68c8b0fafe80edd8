import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explainClientPath, explainPair, sideFromStatus } from '../../../src/core/doctor/explain-pair.js';
import type { FamilyFacts, PortMappingFact } from '../../../src/core/doctor/report.js';
import { outlook, punchWorks, summary } from '../../../src/core/doctor/verdict.js';
import type { PairStatusJson } from '../../../src/core/status.js';

const facts = (over: Partial<FamilyFacts> = {}): FamilyFacts => ({
  family: 4,
  server: '192.0.3.2:3478',
  udp: true,
  mapped: '192.0.3.20:40000',
  mappedOther: '192.0.3.20:40000',
  mapping: 'independent',
  portPreserved: true,
  addressKept: false,
  filtering: 'address+port',
  unsolicited: false,
  hairpin: false,
  portAfterProbe: true,
  leaky: false,
  notes: [],
  ...over,
});
const none6 = facts({ family: 6, server: '[2001:db8::2]:3478', udp: false, mapped: null, mappedOther: null, mapping: null, portPreserved: null, addressKept: null, filtering: null, unsolicited: null, hairpin: null, portAfterProbe: null, leaky: null, notes: ['this machine has no IPv6 address'] });
const symmetric = facts({ mapping: 'dependent', mappedOther: '192.0.3.20:51234', portPreserved: false, portAfterProbe: false, leaky: null });
const upnp: PortMappingFact = { protocol: 'upnp', answered: true, externalAddress: '192.0.3.20', forwards: true, detail: 'UPnP-IGD at 192.168.1.1' };
const path = (o: ReturnType<typeof outlook>, peer: string) => o.find((x) => x.peer.startsWith(peer))?.path;

test('the punch rule: symmetric with symmetric or with a port-filtering peer is relayed, everything else direct', () => {
  const home = { dependent: false, portFilter: true };
  const sym = { dependent: true, portFilter: true };
  const cone = { dependent: false, portFilter: false };
  assert.equal(punchWorks(home, home), true);
  assert.equal(punchWorks(home, sym), false);
  assert.equal(punchWorks(sym, home), false);
  assert.equal(punchWorks(sym, sym), false);
  assert.equal(punchWorks(sym, cone), true);
  // An address-dependent filter lets a symmetric peer in: its packets come from the address we sent to.
  assert.equal(punchWorks(sym, { dependent: false, portFilter: false }), true);
});

test('a home router: direct with home routers and cones, relayed with symmetric NATs unless they map ports', () => {
  const o = outlook(facts(), none6, []);
  assert.equal(path(o, 'home routers'), 'direct');
  assert.equal(path(o, 'public hosts'), 'direct');
  assert.equal(path(o, 'symmetric NATs (many'), 'relay');
  assert.match(o.find((x) => x.peer.startsWith('symmetric NATs (many'))!.why, /offers no port mapping/);
  assert.equal(path(o, 'symmetric NATs whose router maps'), 'direct');
});

test('a symmetric NAT is direct only with peers that let anyone in; a forwarding port mapping makes it reachable by all', () => {
  const o = outlook(symmetric, none6, []);
  assert.equal(path(o, 'home routers'), 'relay');
  assert.equal(path(o, 'symmetric NATs (many'), 'relay');
  assert.equal(path(o, 'public hosts'), 'direct');
  const mapped = outlook(symmetric, none6, [upnp]);
  assert.equal(path(mapped, 'home routers'), 'direct');
  assert.equal(path(mapped, 'symmetric NATs (many'), 'direct');
  assert.match(mapped.find((x) => x.peer.startsWith('symmetric NATs (many'))!.why, /UPnP-IGD mapping lets their packets in from any port/);
  // A mapping that does not forward (another NAT in front) changes nothing.
  assert.equal(path(outlook(symmetric, none6, [{ ...upnp, forwards: false }]), 'home routers'), 'relay');
});

test('no UDP at all: not connected; IPv6 with a stateful firewall: direct with IPv6 peers', () => {
  const blocked = facts({ udp: false, mapped: null, mapping: null, filtering: null });
  assert.deepEqual(outlook(blocked, { ...none6 }, []).map((o) => o.path), ['not connected']);
  const v6 = facts({ family: 6, addressKept: true, hairpin: null, portAfterProbe: null, leaky: null });
  const o = outlook(blocked, v6, []);
  assert.equal(path(o, 'peers with IPv6'), 'direct');
  assert.match(o[0].why, /stateful firewalls on both sides/);
});

test('a leaky router is named, and so is what it asks of the punch', () => {
  const leaky = facts({ portAfterProbe: false, leaky: true });
  assert.ok(summary(leaky, none6, []).some((l) => /IPv4 leaky: yes/.test(l)));
  assert.match(outlook(leaky, none6, []).find((o) => o.peer.startsWith('home routers'))!.why, /this side has to send first/);
  assert.ok(summary(facts(), none6, []).some((l) => l === 'IPv4 leaky: no'));
});

test('summary lines say mapping, port, filtering, hairpin, port mapping and IPv6 in words', () => {
  const lines = summary(symmetric, none6, [upnp, { protocol: 'pcp', answered: false, externalAddress: null, forwards: null, detail: 'no answer' }]);
  assert.ok(lines.includes('IPv4 mapping: per destination, a symmetric NAT (192.0.3.20:40000 toward one port of the hub, 192.0.3.20:51234 toward the other)'));
  assert.ok(lines.includes('IPv4 port preserved: no'));
  assert.ok(lines.includes('IPv4 filtering: by address and port (only what this machine sent to gets in)'));
  assert.ok(lines.includes('Port mapping: UPnP-IGD answers (external address 192.0.3.20) and a test mapping forwards'));
  assert.ok(lines.includes('IPv6: none on this machine'));
  const six = summary(facts(), facts({ family: 6, addressKept: true, unsolicited: false }), []);
  assert.ok(six.includes('IPv6 firewall: stateful (only replies get in)'));
  assert.ok(six.includes('Port mapping: no protocol answers (UPnP-IGD, NAT-PMP, PCP)'));
});

const pair = (over: Partial<PairStatusJson> = {}): PairStatusJson => ({
  a: 'phone', b: 'device', mode: 'relay', confirmed: true, attempting: false, via: '192.0.3.2', candidate: null, family: 4, bridged: false, relayId: 'builtin',
  sinceMs: 1000, directAfterMs: null, firstPathMs: 2000, failures: 1, nextRetryInMs: 8000, reason: 'direct failed: phone heard nothing from device on the direct path', history: [], relayed: null, ...over,
});

test('a relayed pair is explained from both NATs, naming the one without port mapping', () => {
  const text = explainPair(
    pair(),
    { name: 'phone', nat: { mapping: 'dependent', mappingWhy: 'NAT changed the port (41003 -> 1834), so it maps per destination', filtering: 'unknown', filteringWhy: 'no attempt yet', lan: [] } },
    { name: 'device', nat: { mapping: 'independent', mappingWhy: 'NAT kept port 51820', filtering: 'dependent', filteringWhy: 'a symmetric peer could not reach it directly', lan: [] }, portMapping: null },
  );
  assert.equal(
    text,
    "phone <-> device relayed: phone's NAT maps per destination (NAT changed the port (41003 -> 1834), so it maps per destination), and device's router filters by address and port (a symmetric peer could not reach it directly); device's router offers no port mapping (UPnP, NAT-PMP, PCP) (hub: direct failed: phone heard nothing from device on the direct path)",
  );
  assert.equal(explainPair(pair({ mode: 'direct', candidate: 'public4' }), { name: 'phone' }, { name: 'device' }), 'phone <-> device direct (public4)');
  // Nothing known of the NATs: the hub's own reason.
  assert.equal(explainPair(pair(), { name: 'phone' }, { name: 'device' }), 'phone <-> device relayed: direct failed: phone heard nothing from device on the direct path');
});

test('a plain client that cannot go direct: the agent\'s reason, its router\'s filter, and the port mapping it lacks', () => {
  const text = explainClientPath(
    'phone',
    { name: 'device', nat: { mapping: 'independent', mappingWhy: 'NAT kept port 51820', filtering: 'dependent', filteringWhy: 'a symmetric peer could not reach it directly', lan: [] }, portMapping: null },
    { path: 'impossible', reason: 'direct impossible from this network (its NAT changed the port (41003 -> 1834), so it maps per destination (symmetric)); use phone.proxied.conf' },
  );
  assert.equal(
    text,
    "phone <-> device not direct: direct impossible from this network (its NAT changed the port (41003 -> 1834), so it maps per destination (symmetric)); use phone.proxied.conf, and device's router filters by address and port (a symmetric peer could not reach it directly); device's router offers no port mapping (UPnP, NAT-PMP, PCP), which would let phone in directly",
  );
  assert.match(explainClientPath('phone', { name: 'device', portMapping: 'upnp' }, { path: 'impossible', reason: null }), /no reason reported; device's router answers UPnP-IGD/);
});

test("a peer's side from the hub's status: its reported mapping and a leaky router are named; no mapping reported is not called none", () => {
  const base = { mapping: 'independent', mappingWhy: 'NAT kept port 51820', filtering: 'dependent', filteringWhy: 'a symmetric peer could not reach it directly', lan: [] };
  const leaky = sideFromStatus('home', { ...base, leaky: 'yes', leakyWhy: 'probe', portMapping: { protocol: 'pcp', external: '192.0.3.10:51820', expiresInMs: 60_000 } });
  assert.deepEqual([leaky.portMapping, leaky.leaky], ['pcp', true]);
  const text = explainPair(pair(), { name: 'phone', nat: { ...base, mapping: 'dependent', mappingWhy: 'NAT changed the port' } }, leaky);
  assert.match(text, /home's router takes a port when a peer's packet arrives first \(leaky\)/);
  assert.match(text, /home's router answers PCP/);
  const quiet = sideFromStatus('quiet', { ...base, portMapping: null });
  assert.equal(quiet.portMapping, undefined);
  assert.doesNotMatch(explainPair(pair(), { name: 'phone' }, quiet), /offers no port mapping/);
});
