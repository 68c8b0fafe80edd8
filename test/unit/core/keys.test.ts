import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateKeyPair, isKey, publicKeyOf } from '../../../src/core/wireguard/keys.js';

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
