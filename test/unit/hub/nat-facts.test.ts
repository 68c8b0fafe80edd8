import assert from 'node:assert/strict';
import { test } from 'node:test';
import { candidates, emptyFacts, forgetLearned, hopeless, learnFromAttempt, observe, seenElsewhere, withNetwork, type NatFacts } from '../../../src/hub/nat-facts.js';

const seen = (endpoint: string, lan: string[] = ['192.168.1.2/24'], others: NatFacts[] = []) => observe(withNetwork(emptyFacts(51820), lan, 51820, []), endpoint, others);

test('mapping: a kept port is endpoint-independent, a changed one dependent, unless another node behind the same NAT holds the port', () => {
  assert.equal(seen('203.0.113.10:51820').mapping, 'independent');
  const sym = seen('203.0.113.10:40123');
  assert.equal(sym.mapping, 'dependent');
  assert.match(sym.mappingWhy, /51820 -> 40123/);
  const first = seen('203.0.113.10:51820');
  assert.equal(seen('203.0.113.10:40123', ['192.168.1.3/24'], [first]).mapping, 'unknown', 'a port collision behind one NAT says nothing');
  assert.equal(seen('198.51.100.2:51820', ['198.51.100.2/28']).mapping, 'independent');
  assert.match(seen('198.51.100.2:40000', ['198.51.100.2/28']).mappingWhy, /no NAT/, 'a public address is not NATed, whatever the port');
});

test('a second observer (the relay, a peer) settles the mapping, and a new public IP forgets everything', () => {
  const f = seen('203.0.113.10:40123');
  assert.equal(seenElsewhere(f, '203.0.113.10:40123', 'the relay').mapping, 'independent', 'same port toward the relay: independent after all');
  const dep = seenElsewhere(seen('203.0.113.10:51820'), '203.0.113.10:61000', 'the relay');
  assert.equal(dep.mapping, 'dependent');
  assert.equal(observe(dep, '203.0.113.10:51820', []).mapping, 'dependent', 'a guess never overrides what a second observer saw');
  assert.equal(seenElsewhere(f, '198.51.100.9:1', 'x'), f, 'an observation from another IP is not about this mapping');
  const moved = observe(dep, '203.0.113.99:51820', []);
  assert.equal(moved.mapping, 'independent', 'a new network is judged afresh');
  assert.equal(forgetLearned(dep).mapping, 'unknown');
});

test('what an attempt teaches: only a symmetric peer tells anything about filtering', () => {
  const sym = seen('203.0.113.10:40123');
  const home = seen('203.0.113.20:51820');
  const failed = learnFromAttempt(sym, home, false);
  assert.equal(failed.y.filtering, 'dependent');
  assert.equal(failed.x.filtering, 'unknown', 'the symmetric side learns nothing');
  assert.equal(learnFromAttempt(sym, home, true).y.filtering, 'independent');
  assert.equal(learnFromAttempt(home, seen('203.0.113.30:51820'), false).y.filtering, 'unknown', 'two cone mappings failing says nothing about filtering');
});

test('hopeless: both symmetric, or symmetric against a filter; never for what is unknown', () => {
  const sym = seen('203.0.113.10:40123');
  const sym2 = seen('203.0.113.11:40999');
  const home = seen('203.0.113.20:51820');
  assert.match(hopeless(sym, sym2, 's1', 's2') ?? '', /both NATs map per destination/);
  assert.equal(hopeless(sym, home, 's', 'h'), null, 'the home NAT might not filter: try');
  const filtering = learnFromAttempt(sym, home, false).y;
  assert.match(hopeless(sym, filtering, 's', 'h') ?? '', /h filters/);
  assert.equal(hopeless(home, seen('203.0.113.30:51820'), 'a', 'b'), null);
});

test('candidates: the LAN first behind one public IP (private addresses go nowhere else), then the public endpoints', () => {
  const a = seen('203.0.113.10:51820', ['192.168.1.2/24', '10.0.0.5/8']);
  const b = seen('203.0.113.10:3000', ['192.168.1.3/24']);
  assert.deepEqual(candidates(a, b), [
    { kind: 'lan', forX: '192.168.1.3:51820', forY: '192.168.1.2:51820' },
    { kind: 'public', forX: '203.0.113.10:3000', forY: '203.0.113.10:51820' },
  ]);
  const c = seen('203.0.113.20:51820', ['192.168.1.9/24']);
  assert.deepEqual(candidates(a, c).map((x) => x.kind), ['public'], 'behind different NATs a LAN address is never handed out');
  assert.deepEqual(candidates(a, emptyFacts(51820)), [], 'no endpoint seen yet: nothing to try');
});
