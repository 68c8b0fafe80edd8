import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkJoinProof, joinProof } from '../../../src/core/stream/join-proof.js';
import { decodeShimMessage, STREAM_VERSION } from '../../../src/core/stream/messages.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { byEnrolKeyIn, joinStreamCheck, JOIN_STREAM_LIFETIME_MS } from '../../../src/hub/join-stream.js';
import type { NodeRecord } from '../../../src/hub/store/model.js';
import { testHub, testNode } from './fixtures.js';

const hub = testHub();
const NOW = 1_800_000_000_000;

/** A node waiting for its device, as `node add --agent --join` leaves it, and the code's one-time key pair. */
function pending(name: string, host: number, extra: Partial<NodeRecord> = {}) {
  const code = generateKeyPair();
  const node = testNode(name, host, ['default'], { publicKey: '', enrolKey: code.publicKey, enrolExpiresAt: NOW + 3600_000, enrolUsed: false, ...extra });
  return { node, code, proof: joinProof(code.privateKey, code.publicKey, hub.publicKey) };
}

function checker(nodes: NodeRecord[], now = NOW) {
  return joinStreamCheck({ hub, byEnrolKey: byEnrolKeyIn(() => nodes), now: () => now });
}

describe('the join proof (core/stream/join-proof.ts)', () => {
  test('the device makes it from the code alone and the hub checks it with its own key; anyone else cannot', () => {
    const code = generateKeyPair();
    const proof = joinProof(code.privateKey, code.publicKey, hub.publicKey);
    assert.match(proof, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(checkJoinProof(hub.privateKey, hub.publicKey, code.publicKey, proof), true);
    // Another key pair claiming this code's public key, a proof for another hub, a flipped bit.
    const thief = generateKeyPair();
    assert.equal(checkJoinProof(hub.privateKey, hub.publicKey, code.publicKey, joinProof(thief.privateKey, code.publicKey, hub.publicKey)), false);
    const otherHub = generateKeyPair();
    assert.equal(checkJoinProof(hub.privateKey, hub.publicKey, code.publicKey, joinProof(code.privateKey, code.publicKey, otherHub.publicKey)), false);
    const flipped = (proof[0] === 'A' ? 'B' : 'A') + proof.slice(1);
    assert.equal(checkJoinProof(hub.privateKey, hub.publicKey, code.publicKey, flipped), false);
    assert.equal(checkJoinProof(hub.privateKey, hub.publicKey, code.publicKey, proof.slice(1)), false);
  });

  test('a key of small order proves nothing and is refused, not thrown on', () => {
    const zero = Buffer.alloc(32).toString('base64');
    assert.equal(checkJoinProof(hub.privateKey, hub.publicKey, zero, 'A'.repeat(43)), false);
  });

  test('the join message is checked field by field, with the fix in the words', () => {
    const code = generateKeyPair();
    const ok = { type: 'join', v: STREAM_VERSION, enrolKey: code.publicKey, proof: joinProof(code.privateKey, code.publicKey, hub.publicKey) };
    assert.deepEqual(decodeShimMessage(JSON.stringify(ok)), ok);
    assert.throws(() => decodeShimMessage(JSON.stringify({ ...ok, proof: 'short' })), /proof.*base64url/);
    assert.throws(() => decodeShimMessage(JSON.stringify({ ...ok, enrolKey: 'nope' })), /enrolKey/);
    assert.throws(() => decodeShimMessage(JSON.stringify({ ...ok, token: 'x'.repeat(40) })), /token|unrecognized/i);
  });
});

describe('which join streams the hub takes (hub/join-stream.ts)', () => {
  test('a good code with its proof: taken, for a bounded time', () => {
    const p = pending('laptop', 5);
    assert.deepEqual(checker([testNode('other', 4), p.node])(p.code.publicKey, p.proof), { ok: true, lifetimeMs: JOIN_STREAM_LIFETIME_MS });
  });

  test('a wrong proof is refused, and says nothing of the code', () => {
    const p = pending('laptop', 5, { enrolUsed: true });
    const wrong = joinProof(generateKeyPair().privateKey, p.code.publicKey, hub.publicKey);
    const v = checker([p.node])(p.code.publicKey, wrong);
    assert.equal(v.ok, false);
    assert.ok(!v.ok && /no join code the hub knows/.test(v.reason) && !/used|laptop/.test(v.reason), !v.ok ? v.reason : '');
  });

  test('an unknown key (a replaced code) is refused with what to do', () => {
    const p = pending('laptop', 5);
    const stale = generateKeyPair();
    const v = checker([p.node])(stale.publicKey, joinProof(stale.privateKey, stale.publicKey, hub.publicKey));
    assert.ok(!v.ok && /ask for a new one/.test(v.reason));
  });

  test('a used code is refused, naming its node', () => {
    const p = pending('laptop', 5, { enrolUsed: true, publicKey: generateKeyPair().publicKey });
    const v = checker([p.node])(p.code.publicKey, p.proof);
    assert.ok(!v.ok && /already used \(node "laptop" is enrolled\); ask for a new one/.test(v.reason), !v.ok ? v.reason : '');
  });

  test('an expired code is refused with its expiry; the same code a moment earlier was good', () => {
    const p = pending('laptop', 5, { enrolExpiresAt: NOW - 1 });
    const v = checker([p.node])(p.code.publicKey, p.proof);
    assert.ok(!v.ok && v.reason.includes(new Date(NOW - 1).toISOString()) && /expired/.test(v.reason));
    assert.equal(checker([p.node], NOW - 2)(p.code.publicKey, p.proof).ok, true);
  });

  test("a client's record never takes a join stream", () => {
    const p = pending('phone', 6, { kind: 'client' });
    assert.equal(checker([p.node])(p.code.publicKey, p.proof).ok, false);
  });
});
