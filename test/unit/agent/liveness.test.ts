import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LivenessProbe } from '../../../src/agent/liveness-probe.js';
import { Liveness, PROBE_ANSWER_MS } from '../../../src/agent/liveness.js';

const K = 25;

/**
 * Drives a Liveness once a second (the agent reads an idle device about that often) over `seconds`,
 * with `rxAt(t)` the bytes the peer's packets added at second t; returns what it said, by second.
 */
function run(seconds: number, rxAt: (t: number, probedAt: number | null) => number, txAt: (t: number) => number = (t) => 32 * Math.floor(t / K)) {
  const l = new Liveness(0);
  const said: [number, string][] = [];
  let rx = 0;
  let probedAt: number | null = null;
  for (let t = 1; t <= seconds; t++) {
    rx += rxAt(t, probedAt);
    l.observe(rx, txAt(t), t * 1000);
    const v = l.check(t * 1000, txAt(t), K);
    if (v?.type === 'probe') probedAt = t;
    if (v) said.push([t, v.type === 'dead' ? `dead: ${v.reason}` : 'probe']);
  }
  return said;
}

test('a peer that sends its own keepalives every K s is never probed nor reported', () => {
  assert.deepEqual(run(300, (t) => (t % K === 0 ? 32 : 0)), []);
});

test("a quiet peer (our keepalives keep restarting its timer) is probed after K + 5 s; its answer within 10 s keeps the path, and it is probed again only after the next silence", () => {
  // WireGuard answers data with a keepalive after KEEPALIVE_TIMEOUT (10 s) at the latest.
  const said = run(200, (t, probedAt) => (probedAt !== null && t === probedAt + 10 ? 32 : 0));
  assert.deepEqual(said, [
    [31, 'probe'],
    [72, 'probe'],
    [113, 'probe'],
    [154, 'probe'],
    [195, 'probe'],
  ]);
});

test('a dead path: probed after K + 5 s, reported once when the probe goes unanswered, not again', () => {
  const said = run(200, () => 0);
  assert.deepEqual(said, [
    [31, 'probe'],
    [31 + PROBE_ANSWER_MS / 1000 + 1, 'dead: nothing from the peer for 44 s, nor an answer to a probe within 12 s'],
  ]);
});

test('data out and nothing back for 12 s is a dead path before any probe', () => {
  const said = run(60, () => 0, (t) => 1000 * t);
  assert.deepEqual(said, [[13, 'dead: nothing from the peer for 13 s while we sent data']]);
});

test('the peer heard again after a report starts a new silence: probed and reported afresh', () => {
  const said = run(120, (t) => (t === 60 ? 32 : 0));
  assert.deepEqual(
    said.map(([t, s]) => [t, s.split(':')[0]]),
    [
      [31, 'probe'],
      [44, 'dead'],
      [91, 'probe'],
      [104, 'dead'],
    ],
  );
});

test("the probe goes to the peer's tunnel address: its first host route of either family", () => {
  assert.equal(LivenessProbe.target(['10.99.0.0/24', '10.99.0.7/32', 'fd00::7/128'])?.toString(), '10.99.0.7');
  assert.equal(LivenessProbe.target(['fd00:99::7/128'])?.toString(), 'fd00:99::7');
  assert.equal(LivenessProbe.target(['10.1.0.0/16']), undefined, 'a routed subnet names no one to ask');
});
