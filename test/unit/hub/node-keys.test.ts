import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isKey, publicKeyOf } from '../../../src/core/wireguard/keys.js';
import { newKeyPair } from '../../../src/hub/node-keys.js';

test('node keys are WireGuard key pairs, and thousands in a row never hang', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 3000; i++) {
    const k = newKeyPair();
    if (i < 20) {
      assert.ok(isKey(k.privateKey) && isKey(k.publicKey), JSON.stringify(k.publicKey));
      assert.equal(publicKeyOf(k.privateKey), k.publicKey);
    }
    seen.add(k.publicKey);
  }
  assert.equal(seen.size, 3000);
});
