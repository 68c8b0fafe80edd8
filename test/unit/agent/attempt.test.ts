import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keepsSilent, readyAttempt, stepAttempt, VERDICT_TIMEOUT_MS, type AgentAttempt, type AttemptInput } from '../../../src/agent/attempt.js';
import { kindOf } from '../../../src/core/candidates/index.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import type { PeerState } from '../../../src/core/wireguard/uapi.js';

const E = (s: string) => Endpoint.parse(s);
const DIRECT = E('203.0.113.20:51820');
const RELAY = E('203.0.113.2:52000');
const peer = (rx: number, endpoint: Endpoint | undefined, lastHandshakeMs = 0): PeerState => ({ publicKey: 'k', allowedIps: [], persistentKeepalive: 0, lastHandshakeMs, rxBytes: rx, txBytes: 0, endpoint });
const start = (o: Partial<Parameters<typeof readyAttempt>[0]> = {}) => readyAttempt({ seq: 1, kind: kindOf('public4'), candidate: DIRECT, fallback: null, windowMs: 2000, holdMs: 2000, now: 0, baselineRx: 0, ...o });

function run(at: AgentAttempt, steps: [number, AttemptInput][]) {
  const effects: string[] = [];
  let cur: AgentAttempt | null = at;
  for (const [now, input] of steps) {
    if (!cur) break;
    const s = stepAttempt(cur, input, now);
    effects.push(...s.effects.map((e) => e.type + ('endpoint' in e && e.endpoint ? ` ${e.endpoint.toString()}` : '')));
    cur = s.attempt;
  }
  return { at: cur, effects };
}

test('from the relay: the punch borrows the direct path for the hold, is measured once, then the data goes back; the window ends unheard', () => {
  const r = run(start({ fallback: RELAY, holdMs: 50, baselineRx: 1000 }), [
    [10, { type: 'punch', peer: peer(1000, RELAY), relay: RELAY }],
    [11, { type: 'measured', peer: peer(1000, DIRECT) }],
    [40, { type: 'observe', peer: peer(1000, DIRECT), relay: RELAY }],
    [61, { type: 'observe', peer: peer(1000, DIRECT), relay: RELAY }],
    [2011, { type: 'observe', peer: peer(1064, RELAY), relay: RELAY }],
  ]);
  assert.deepEqual(r.effects, [`punch ${DIRECT.toString()}`, 'measure', `point ${RELAY.toString()}`, 'unheard']);
  assert.equal(r.at?.phase, 'over', 'waiting for the verdict');
});

test('a packet that arrived while our endpoint changed and moved nothing after is ambiguous: punch once more, the answer tells', () => {
  const r = run(start({ fallback: RELAY, holdMs: 50, baselineRx: 1000 }), [
    [10, { type: 'punch', peer: peer(1000, RELAY), relay: RELAY }],
    [11, { type: 'measured', peer: peer(1032, DIRECT) }],
  ]);
  assert.deepEqual(r.effects, [`punch ${DIRECT.toString()}`, 'measure', 'punch']);
  assert.equal(r.at?.lastRx, 1032, 'the new baseline: only later packets count');
});

test('evidence is reported once, answered with at most three punches, and a late answer after the window still counts', () => {
  const steps: [number, AttemptInput][] = [[0, { type: 'punch', peer: peer(0, DIRECT), relay: null }]];
  for (let i = 1; i <= 5; i++) steps.push([i * 10, { type: 'observe', peer: peer(32 * i, DIRECT), relay: null }]);
  const r = run(start(), steps);
  assert.deepEqual(r.effects, ['punch', 'heard 203.0.113.20:51820', 'punch', 'punch', 'punch']);
  const late = run(start({ windowMs: 600 }), [
    [0, { type: 'punch', peer: peer(0, DIRECT), relay: null }],
    [700, { type: 'observe', peer: peer(0, DIRECT), relay: null }],
    [900, { type: 'observe', peer: peer(32, E('203.0.113.20:1111')), relay: null }],
  ]);
  assert.deepEqual(late.effects, ['punch', 'unheard', 'heard 203.0.113.20:1111', 'punch']);
});

test('the hub that never punches, or never decides, is given up on after 10 s: keep what was committed', () => {
  assert.deepEqual(run(start(), [[VERDICT_TIMEOUT_MS - 1, { type: 'observe', peer: peer(0, DIRECT), relay: null }]]).effects, []);
  const noPunch = run(start(), [[VERDICT_TIMEOUT_MS, { type: 'observe', peer: peer(0, DIRECT), relay: null }]]);
  assert.deepEqual(noPunch.effects, ['abandon']);
  assert.equal(noPunch.at, null);
  const noVerdict = run(start(), [
    [0, { type: 'punch', peer: peer(0, DIRECT), relay: null }],
    [2000, { type: 'observe', peer: peer(0, DIRECT), relay: null }],
    [2000 + VERDICT_TIMEOUT_MS, { type: 'observe', peer: peer(0, DIRECT), relay: null }],
  ]);
  assert.deepEqual(noVerdict.effects, ['punch', 'unheard', 'abandon']);
});

test('a new handshake on the candidate counts even before its bytes do; the relay never does', () => {
  const hs = run(start({ baselineRx: 100 }), [
    [0, { type: 'punch', peer: peer(100, DIRECT), relay: null }],
    [20, { type: 'observe', peer: peer(100, DIRECT, 15), relay: null }],
  ]);
  assert.deepEqual(hs.effects, ['punch', 'heard 203.0.113.20:51820', 'punch']);
  const relayed = run(start({ baselineRx: 100 }), [
    [0, { type: 'punch', peer: peer(100, DIRECT), relay: RELAY }],
    [20, { type: 'observe', peer: peer(200, RELAY, 15), relay: RELAY }],
  ]);
  assert.deepEqual(relayed.effects, ['punch']);
});

test('roles: the responder never punches; it answers only once the initiator\'s handshake completed; the initiator punches on the hub\'s word', () => {
  // Ready at 0 (the re-added peer counts from zero). The initiator's initiation (148 bytes) comes in
  // at 12 ms: heard, but no answer yet (it would be an initiation of our own). Its first packet on
  // the new session (a 32-byte keepalive) completes the handshake: now answer.
  const responder = start({ role: 'responder', now: 0 });
  assert.equal(keepsSilent(responder), true);
  const r = run(responder, [
    [10, { type: 'punch', peer: peer(0, DIRECT), relay: null }],
    [12, { type: 'observe', peer: peer(148, DIRECT), relay: null }],
    [14, { type: 'observe', peer: peer(180, DIRECT, 13), relay: null }],
  ]);
  assert.deepEqual(r.effects, ['heard 203.0.113.20:51820', 'punch']);
  assert.equal(keepsSilent(r.at!), false, 'its answer gave the peer its addresses');

  const initiator = start({ role: 'initiator', now: 0 });
  assert.equal(keepsSilent(initiator), true, 'silent until the punch');
  const i = run(initiator, [
    [10, { type: 'punch', peer: peer(0, DIRECT), relay: null }],
    [12, { type: 'observe', peer: peer(92, DIRECT, 12), relay: null }],
  ]);
  assert.deepEqual(i.effects, ['punch', 'heard 203.0.113.20:51820', 'punch']);
  assert.equal(keepsSilent(i.at!), false);
  assert.equal(keepsSilent(start()), false, 'without roles nothing is held back');
});
