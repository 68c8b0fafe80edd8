import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kindOf, type Candidate } from '../../../src/core/candidates/index.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { advance, startAttempt, type Attempt, type AttemptInput, type Step } from '../../../src/hub/pairs/attempt.js';

const T = { graceMs: 400, holdMs: 50 };
const cand = (kind: 'lan' | 'public4' | 'public6', a: string, b: string): Candidate => ({ kind: kindOf(kind), forX: Endpoint.parse(a), forY: Endpoint.parse(b) });
const lan = cand('lan', '192.168.1.3:51820', '192.168.1.2:51820');
const pub = cand('public4', '203.0.113.20:51820', '203.0.113.10:51820');
const names = { a: 'a', b: 'b' };
const types = (s: Step) => s.out.map((o) => (o.type === 'arm' || o.type === 'disarm' ? `${o.type}:${o.timer}` : o.type));

/** Runs inputs through the machine from `s`, the pair's seq counter following it, at time `now`. */
function drive(s: Step, inputs: AttemptInput[], now = 0): Step {
  let at: Attempt | null = s.attempt;
  let last = s;
  for (const i of inputs) {
    if (!at) break;
    last = advance(at, i, { now, nextSeq: at.seq + 1 }, T);
    at = last.attempt;
  }
  return last;
}

test('prepare to both, then the punch once both are ready, with the verdict timer at two windows and a grace', () => {
  const s = startAttempt([pub], { seq: 7, fromRelay: false, names, now: 0 }, T);
  assert.deepEqual(types(s), ['prepare', 'arm:ready']);
  assert.deepEqual(s.out[0], { type: 'prepare', seq: 7, candidate: pub, windowMs: 2000, holdMs: 2000 });
  assert.equal((s.out[1] as { ms: number }).ms, 2400, 'not ready within a window and a grace fails the candidate');
  const one = drive(s, [{ type: 'ready', side: 'a', seq: 7 }]);
  assert.deepEqual(one.out, [], 'one side ready is not enough');
  const both = drive(s, [{ type: 'ready', side: 'a', seq: 7 }, { type: 'ready', side: 'b', seq: 7 }]);
  assert.deepEqual(types(both), ['disarm:ready', 'punch', 'arm:verdict']);
  assert.equal((both.out[2] as { ms: number }).ms, 4400);
  assert.deepEqual(drive(both, [{ type: 'ready', side: 'a', seq: 7 }]).out, [], 'a repeated ready punches nothing twice');
  assert.deepEqual(drive(s, [{ type: 'ready', side: 'a', seq: 6 }]).out, [], 'a stale seq is ignored');
});

test('success needs both sides to hear each other; it reports where each heard the other, and how long it took', () => {
  const s = drive(startAttempt([pub], { seq: 1, fromRelay: false, names, now: 0 }, T), [{ type: 'ready', side: 'a', seq: 1 }, { type: 'ready', side: 'b', seq: 1 }]);
  const half = drive(s, [{ type: 'heard', side: 'a', seq: 1, endpoint: pub.forX }]);
  assert.ok(half.attempt && !half.out.some((o) => o.type === 'succeeded'));
  const done = drive(half, [{ type: 'heard', side: 'b', seq: 1, endpoint: Endpoint.parse('203.0.113.10:7777') }], 120);
  const ok = done.out.find((o) => o.type === 'succeeded');
  assert.equal(done.attempt, null);
  assert.ok(ok && ok.type === 'succeeded');
  assert.equal(ok.heard.b.toString(), '203.0.113.10:7777', 'a symmetric NAT\'s real port, not the hub\'s guess');
  assert.equal(ok.afterMs, 120);
});

test('a late side still counts; only both unheard moves on at once; one heard and the other not fails after a grace', () => {
  const ready = drive(startAttempt([pub], { seq: 1, fromRelay: false, names, now: 0 }, T), [{ type: 'ready', side: 'a', seq: 1 }, { type: 'ready', side: 'b', seq: 1 }]);
  const aDeaf = drive(ready, [{ type: 'unheard', side: 'a', seq: 1 }]);
  assert.deepEqual(aDeaf.out, [], 'one side\'s window ending is not the verdict');
  const late = drive(aDeaf, [{ type: 'heard', side: 'b', seq: 1, endpoint: pub.forY }, { type: 'heard', side: 'a', seq: 1, endpoint: pub.forX }]);
  assert.ok(late.out.some((o) => o.type === 'succeeded'), 'a heard b\'s late punch after all');
  const both = drive(ready, [{ type: 'unheard', side: 'a', seq: 1 }, { type: 'unheard', side: 'b', seq: 1 }]);
  assert.deepEqual(types(both).slice(-1), ['exhausted']);
  const oneWay = drive(ready, [{ type: 'heard', side: 'a', seq: 1, endpoint: pub.forX }, { type: 'unheard', side: 'b', seq: 1 }]);
  assert.deepEqual(types(oneWay), ['arm:late']);
  const verdict = drive(oneWay, [{ type: 'timer', timer: 'late', seq: 1 }]);
  const ex = verdict.out.find((o) => o.type === 'exhausted');
  assert.ok(ex && ex.type === 'exhausted' && /b heard nothing from a on the direct IPv4 path/.test(ex.why), JSON.stringify(ex));
  const failed = verdict.out.find((o) => o.type === 'candidate-failed');
  assert.ok(failed?.type === 'candidate-failed' && failed.ready.a && failed.ready.b && failed.heard.a && !failed.heard.b, 'a heard b, b heard nothing');
});

test('a failed candidate moves to the next with a new seq; timers of the old one are stale', () => {
  const s = startAttempt([lan, pub], { seq: 3, fromRelay: true, names, now: 0 }, T);
  assert.deepEqual(s.out[0], { type: 'prepare', seq: 3, candidate: lan, windowMs: 600, holdMs: 50 }, 'from the relay only the punch borrows the path');
  const noReady = drive(s, [{ type: 'timer', timer: 'ready', seq: 3 }]);
  assert.equal(noReady.attempt?.index, 1);
  assert.equal(noReady.attempt?.seq, 4);
  assert.deepEqual(types(noReady), ['disarm:ready', 'disarm:verdict', 'disarm:late', 'candidate-failed', 'prepare', 'arm:ready']);
  // Which candidate failed, and how far it got: what the hub learns about a port mapping from it.
  assert.deepEqual(noReady.out.find((o) => o.type === 'candidate-failed'), { type: 'candidate-failed', candidate: lan, ready: { a: false, b: false }, heard: { a: false, b: false } });
  assert.deepEqual(drive(noReady, [{ type: 'timer', timer: 'ready', seq: 3 }]).out, [], 'the first candidate\'s timer no longer counts');
  const verdict = drive(noReady, [{ type: 'ready', side: 'a', seq: 4 }, { type: 'ready', side: 'b', seq: 4 }, { type: 'timer', timer: 'verdict', seq: 4 }]);
  const ex = verdict.out.find((o) => o.type === 'exhausted');
  assert.ok(ex && ex.type === 'exhausted' && ex.why === 'no answer on the direct IPv4 path within 2000 ms' && ex.tried.length === 2);
  const slow = drive(startAttempt([pub], { seq: 1, fromRelay: false, names, now: 0 }, T), [{ type: 'ready', side: 'b', seq: 1 }, { type: 'timer', timer: 'ready', seq: 1 }]);
  const why = slow.out.find((o) => o.type === 'exhausted');
  assert.ok(why && why.type === 'exhausted' && why.why === 'a did not get ready for the attempt within 2400 ms');
});
