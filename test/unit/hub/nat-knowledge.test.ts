import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gather } from '../../../src/core/candidates/index.js';
import { punchBlocked } from '../../../src/core/nat.js';
import { Prefixed } from '../../../src/core/net/cidr.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { NatKnowledge } from '../../../src/hub/nat-knowledge.js';

/** A hub's knowledge of nodes a, b, c…, each seen at an endpoint and reporting its interfaces. */
function knowledge() {
  const nat = new NatKnowledge({ name: (k) => k, configuredListenPort: () => 51820 });
  const seen = (key: string, endpoint: string, interfaces: string[] = ['192.168.1.2/24']) => {
    nat.reported(key, interfaces.map((i) => Prefixed.parse(i)), 51820, false);
    nat.sighted(key, Endpoint.parse(endpoint));
    return nat.view(key);
  };
  return { nat, seen };
}

test('mapping: a kept port is endpoint-independent, a changed one dependent, unless another node behind the same NAT holds the port', () => {
  const { nat, seen } = knowledge();
  assert.equal(seen('a', '203.0.113.10:51820').nat.mapping, 'independent');
  const sym = seen('s', '203.0.113.11:40123');
  assert.equal(sym.nat.mapping, 'dependent');
  assert.match(sym.nat.mappingWhy, /51820 -> 40123/);
  assert.equal(seen('b', '203.0.113.10:40123', ['192.168.1.3/24']).nat.mapping, 'unknown', 'a port collision behind one NAT says nothing');
  assert.match(nat.view('b').nat.mappingWhy, /taken by another node/);
  assert.equal(seen('p', '198.51.100.2:51820', ['198.51.100.2/28']).nat.mapping, 'independent');
  assert.match(seen('q', '198.51.100.3:40000', ['198.51.100.3/28']).nat.mappingWhy, /no NAT/, 'a public address is not NATed, whatever the port');
  assert.match(seen('v6', '[2001:db8::5]:51820').nat.mappingWhy, /over IPv6/, 'seen over IPv6, its IPv4 NAT is unknown');
});

test('a second observer (the relay, a peer) settles the mapping, later guesses keep it, and a new public IP forgets everything', () => {
  const { nat, seen } = knowledge();
  seen('a', '203.0.113.10:40123');
  assert.deepEqual(nat.observedBy('a', Endpoint.parse('203.0.113.10:40123'), { kind: 'relay' }), { mappingChanged: true });
  assert.equal(nat.view('a').nat.mapping, 'independent', 'same port toward the relay: independent after all');
  assert.match(nat.view('a').nat.mappingWhy, /seen by the relay at the same port/);
  seen('b', '203.0.113.20:51820');
  nat.observedBy('b', Endpoint.parse('203.0.113.20:61000'), { kind: 'peer', name: 'x' });
  assert.equal(nat.view('b').nat.mapping, 'dependent');
  assert.match(nat.view('b').nat.mappingWhy, /seen by peer x at port 61000, by the hub at 51820/);
  nat.sighted('b', Endpoint.parse('203.0.113.20:51820'));
  assert.equal(nat.view('b').nat.mapping, 'dependent', 'a guess never overrides what a second observer saw');
  assert.deepEqual(nat.observedBy('b', Endpoint.parse('198.51.100.9:1'), { kind: 'relay' }), { mappingChanged: false }, 'an observation from another address is not about this mapping');
  assert.deepEqual(nat.sighted('b', Endpoint.parse('203.0.113.99:51820')), { addressChanged: true });
  assert.equal(nat.view('b').nat.mapping, 'independent', 'a new network is judged afresh');
  nat.reported('b', [], 51820, true);
  assert.equal(nat.view('b').nat.mappingWhy, 'NAT kept port 51820', 'a reported network change forgets, then judges again from what the hub sees');
  assert.match(nat.view('b').nat.filteringWhy, /network changed/);
});

test('what an attempt teaches: only a symmetric peer tells anything about filtering', () => {
  const { nat, seen } = knowledge();
  seen('sym', '203.0.113.10:40123');
  seen('home', '203.0.113.20:51820');
  seen('cone', '203.0.113.30:51820');
  nat.attemptEnded('sym', 'home', false);
  assert.equal(nat.view('home').nat.filtering, 'dependent');
  assert.equal(nat.view('sym').nat.filtering, 'unknown', 'the symmetric side learns nothing');
  nat.attemptEnded('sym', 'home', true);
  assert.equal(nat.view('home').nat.filtering, 'independent');
  nat.attemptEnded('cone', 'home', false);
  assert.equal(nat.view('cone').nat.filtering, 'unknown', 'two cone mappings failing says nothing about filtering');
});

test('blocked: both symmetric, or symmetric against a filter; never for what is unknown', () => {
  const { nat, seen } = knowledge();
  const sym = seen('s1', '203.0.113.10:40123');
  const sym2 = seen('s2', '203.0.113.11:40999');
  const home = seen('h', '203.0.113.20:51820');
  assert.match(punchBlocked(sym.nat, sym2.nat, 's1', 's2') ?? '', /both NATs map per destination/);
  assert.equal(punchBlocked(sym.nat, home.nat, 's1', 'h'), null, 'the home NAT might not filter: try');
  nat.attemptEnded('s1', 'h', false);
  assert.match(punchBlocked(nat.view('s1').nat, nat.view('h').nat, 's1', 'h') ?? '', /h filters/);
  assert.equal(punchBlocked(home.nat, seen('c', '203.0.113.30:51820').nat, 'h', 'c'), null);
});

test('candidates: the LAN first behind one public IP (private addresses go nowhere else), then the public endpoints', () => {
  const { seen } = knowledge();
  const a = seen('a', '203.0.113.10:51820', ['192.168.1.2/24', '10.0.0.5/8']);
  const b = seen('b', '203.0.113.10:3000', ['192.168.1.3/24']);
  assert.deepEqual(
    gather(a, b).map((c) => [c.kind.id, c.forX.toString(), c.forY.toString()]),
    [
      ['lan', '192.168.1.3:51820', '192.168.1.2:51820'],
      ['public4', '203.0.113.10:3000', '203.0.113.10:51820'],
    ],
  );
  const c = seen('c', '203.0.113.20:51820', ['192.168.1.9/24']);
  assert.deepEqual(gather(a, c).map((x) => x.kind.id), ['public4'], 'behind different NATs a LAN address is never handed out');
  const { nat } = knowledge();
  assert.deepEqual(gather(nat.view('x'), nat.view('y')), [], 'no endpoint seen yet: nothing to try');
});

test('forgetting a node drops what is known of it, and of its port at its public address', () => {
  const { nat, seen } = knowledge();
  seen('a', '203.0.113.10:51820');
  assert.equal(seen('b', '203.0.113.10:40000', ['192.168.1.3/24']).nat.mapping, 'unknown');
  nat.forget('a');
  assert.equal(nat.status('a'), undefined);
  nat.sighted('b', Endpoint.parse('203.0.113.10:40001'));
  assert.equal(nat.view('b').nat.mapping, 'dependent', 'nobody else holds 51820 there any more');
});

test('leaky: the hub\'s WAN probe says whether the router takes unsolicited input; only a NAT that keeps ports can tell, and a new network forgets it', () => {
  const { nat, seen } = knowledge();
  seen('l', '203.0.113.10:51820');
  assert.equal(nat.view('l').nat.leaky, 'unknown');
  assert.ok(nat.wanProbeable('l'));
  assert.deepEqual(nat.wanProbed('l', 2027, 30000), { leakyChanged: true });
  const l = nat.view('l').nat;
  assert.equal(l.leaky, 'yes');
  assert.match(l.leakyWhy, /unsolicited packet to port 30000, the node's packet from that port came from 2027/);
  assert.equal(l.mapping, 'independent', 'a leak is not a per-destination mapping');
  assert.equal(punchBlocked(l, seen('h', '203.0.113.20:51820').nat, 'l', 'h'), null, 'a leaky router never makes the hub give up on direct');

  seen('r', '203.0.113.30:51820');
  nat.wanProbed('r', 30001, 30001);
  assert.equal(nat.view('r').nat.leaky, 'no');
  assert.match(nat.view('r').nat.leakyWhy, /drops WAN input/);

  const sym = seen('s', '203.0.113.40:40123');
  assert.equal(nat.wanProbeable('s'), false, 'a symmetric NAT changes the port anyway: a probe says nothing');
  assert.deepEqual(nat.wanProbed('s', 2027, 30000), { leakyChanged: false });
  assert.equal(nat.view('s').nat.leaky, 'unknown');
  assert.equal(sym.nat.mapping, 'dependent');

  nat.reported('l', [], 51820, true);
  assert.equal(nat.view('l').nat.leaky, 'unknown', 'a network change forgets it');
  nat.wanProbed('l', 2027, 30000);
  nat.sighted('l', Endpoint.parse('203.0.113.99:51820'));
  assert.equal(nat.view('l').nat.leaky, 'unknown', 'so does a new public address');
  assert.equal(nat.status('l')?.leaky, 'unknown');
});

test('leaky: a peer that saw another port than the hub after its own packet may have come first marks a leak, not a symmetric NAT', () => {
  const { nat, seen } = knowledge();
  seen('l', '203.0.113.10:51820');
  assert.deepEqual(nat.observedBy('l', Endpoint.parse('203.0.113.10:2027'), { kind: 'peer', name: 'x', peerFirst: true }), { mappingChanged: false });
  assert.equal(nat.view('l').nat.mapping, 'independent');
  assert.equal(nat.view('l').nat.leaky, 'yes');
  assert.match(nat.view('l').nat.leakyWhy, /peer x saw it at port 2027, the hub at 51820, after the peer's packet came first/);
  // A NAT that changed the port toward the hub too is judged on its mapping as before.
  seen('s', '203.0.113.11:40123');
  nat.observedBy('s', Endpoint.parse('203.0.113.11:40999'), { kind: 'peer', name: 'x', peerFirst: true });
  assert.equal(nat.view('s').nat.mapping, 'dependent');
  assert.equal(nat.view('s').nat.leaky, 'unknown');
  // The relay never sends first.
  seen('r', '203.0.113.12:51820');
  nat.observedBy('r', Endpoint.parse('203.0.113.12:2027'), { kind: 'relay' });
  assert.equal(nat.view('r').nat.mapping, 'dependent');
});

test('a mapping that does not forward: only a failure in which the mapped side heard nothing counts; two in a row leave it out, for 10 min doubling; success, another mapping or a network change start over', () => {
  let now = 1_000_000;
  const warnings: string[] = [];
  const distrusted: (string | null)[] = [];
  const nat = new NatKnowledge({
    name: (k) => k,
    configuredListenPort: () => 51820,
    now: () => now,
    log: { warn: (_o: object, msg: string) => void warnings.push(msg) },
    // What the hub then records for plain clients' configs: the view as it is at that moment.
    mappingDistrusted: (k) => void distrusted.push(nat.view(k).mapped?.toString() ?? null),
  });
  const ifs = [Prefixed.parse('192.168.1.2/24')];
  const map = (external: string, changed = false) => nat.reported('m', ifs, 51820, changed, { protocol: 'natpmp', external: Endpoint.parse(external), expiresInMs: 7200_000 });
  map('203.0.113.10:51820');
  nat.sighted('m', Endpoint.parse('203.0.113.10:40001'));
  nat.reported('p', ifs, 51820, false);
  nat.sighted('p', Endpoint.parse('203.0.113.20:40002'));
  const candidate = () => gather(nat.view('p'), nat.view('m')).find((c) => c.kind.id === 'mapped');
  const ready = { a: true, b: true };
  // x = p (initiates), y = m (the mapped side, b).
  const fail = (o: { ready?: { a: boolean; b: boolean }; heard?: { a: boolean; b: boolean } } = {}) => nat.candidateFailed('p', 'm', candidate()!, { ready: o.ready ?? ready, heard: o.heard ?? { a: false, b: false } });
  assert.ok(candidate(), 'a mapping makes the pair a candidate');

  fail({ heard: { a: false, b: true } });
  fail({ heard: { a: false, b: true } });
  assert.ok(candidate(), "the mapped side heard the peer: the mapping forwarded, the answer got lost elsewhere; it does not count");
  fail({ ready: { a: true, b: false } });
  fail({ ready: { a: true, b: false } });
  assert.ok(candidate(), 'an agent that was not ready says nothing about the router');
  fail();
  assert.ok(candidate(), 'one failure is not enough (an agent may have stalled)');
  fail();
  assert.equal(candidate(), undefined, 'two in a row: left out');
  assert.equal(nat.view('m').mapped, null);
  assert.match(nat.status('m')?.portMapping?.problem ?? '', /did not forward in 2 attempts/);
  assert.equal(nat.status('m')?.portMapping?.usable, false);
  assert.equal(warnings.length, 1);
  assert.deepEqual(distrusted, [null], 'the hub is told, and by then the view no longer has it');

  now += 10 * 60_000;
  assert.ok(candidate(), 'back after 10 min');
  assert.equal(nat.status('m')?.portMapping?.problem, null);
  fail();
  assert.equal(candidate(), undefined, 'failed again at once: left out again…');
  now += 10 * 60_000;
  assert.equal(candidate(), undefined, '…for twice as long');
  now += 10 * 60_000;
  assert.ok(candidate());
  assert.equal(warnings.length, 1, 'logged once per mapping');

  nat.candidateWorked('p', 'm', candidate()!);
  fail();
  assert.ok(candidate(), 'a mapping that carried a pair starts over: one failure is not enough again');

  fail();
  assert.equal(candidate(), undefined);
  map('203.0.113.10:51820');
  assert.equal(candidate(), undefined, 'a renewal of the same mapping keeps what was learned');
  map('203.0.113.10:52000');
  assert.ok(candidate(), 'another external port is another mapping: trusted afresh');
  fail();
  fail();
  assert.equal(candidate(), undefined);
  map('203.0.113.10:52000', true);
  assert.ok(candidate(), 'a network change forgets it');
});
