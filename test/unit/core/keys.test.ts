import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateKeyPair, isKey, isLowOrder, publicKeyOf } from '../../../src/core/wireguard/keys.js';

test('key pairs: raw 32-byte X25519 keys whose public half matches the private one', () => {
  const { privateKey, publicKey } = generateKeyPair();
  assert.ok(isKey(privateKey) && isKey(publicKey));
  assert.equal(publicKeyOf(privateKey), publicKey);
  // RFC 7748 6.1: Alice's private key and the public key it yields.
  const alice = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString('base64');
  assert.equal(Buffer.from(publicKeyOf(alice), 'base64').toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
});

test('ten thousand key pairs in a loop do not hang (Node 20.20 deadlocked on JWK exports within a few)', { timeout: 30_000 }, () => {
  const seen = new Set<string>();
  for (let i = 0; i < 10_000; i++) seen.add(generateKeyPair().publicKey);
  assert.equal(seen.size, 10_000);
});

test('low-order public keys are recognised: every private key agrees on the same secret with them', () => {
  const hex = (h: string) => Buffer.from(h, 'hex').toString('base64');
  assert.ok(isLowOrder(hex('00'.repeat(32))), 'all zeros');
  assert.ok(isLowOrder(hex('01' + '00'.repeat(31))), 'one');
  // A point of order 8 (libsodium's blocklist; RFC 7748 section 6.1 says why it must be checked).
  assert.ok(isLowOrder(hex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800')));
  assert.ok(isLowOrder('short'), 'not 32 bytes');
  assert.ok(!isLowOrder(generateKeyPair().publicKey));
});
