import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeJoinCode, encodeJoinCode, type JoinCode } from '../../../src/core/join-code.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';

const code = (over: Partial<JoinCode> = {}): JoinCode => ({
  name: 'laptop',
  hubPublicKey: generateKeyPair().publicKey,
  hubEndpoints: ['vpn.example.org:51820'],
  hubAddress: '10.99.0.1',
  apiPort: 51821,
  key: generateKeyPair().privateKey,
  address: '10.99.1.5/24',
  expiresAt: Date.now() + 3600_000,
  ...over,
});

test('a join code round-trips, with the hub at an IPv4 or bracketed IPv6 endpoint or a DNS name', () => {
  for (const hubEndpoints of [['vpn.example.org:51820'], ['203.0.113.2:51820', '[2001:db8::2]:51820']]) {
    const c = code({ hubEndpoints, address6: 'fd3c:1a2b:3c4d:1::5/64' });
    assert.deepEqual(decodeJoinCode(encodeJoinCode(c)), c);
  }
  // A code of the release before IPv6 named one endpoint, as hubEndpoint.
  const { hubEndpoints, ...rest } = code();
  const old = 'wgp2p-join1.' + Buffer.from(JSON.stringify({ ...rest, hubEndpoint: hubEndpoints[0] })).toString('base64url');
  assert.deepEqual(decodeJoinCode(old).hubEndpoints, hubEndpoints);
});

test('a damaged code is refused with the field and the fix, before anything happens', () => {
  const refuse = (c: JoinCode, field: RegExp) => assert.throws(() => decodeJoinCode(encodeJoinCode(c)), (err: Error) => field.test(err.message) && /copy it again/.test(err.message));
  refuse(code({ hubEndpoints: ['999.1.1.1:5'] }), /hubEndpoints\.0: .*not an IPv4 address/);
  refuse(code({ hubEndpoints: ['2001:db8::2:51820'] }), /hubEndpoints\.0: .*brackets/);
  refuse(code({ hubAddress: '10.99.0' }), /hubAddress/);
  refuse(code({ address: '10.99.1.5' }), /address: .*prefix/);
  assert.throws(() => decodeJoinCode('wgp2p-join1.@@@'), /damaged/);
  assert.throws(() => decodeJoinCode('hello'), /not a wgp2p join code/);
});
