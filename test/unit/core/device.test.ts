import { Endpoint } from '../../../src/core/net/endpoint.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeviceError, parseDump } from '../../../src/core/wireguard/device.js';
import { generateKeyPair, hexToKey, keyToHex, publicKeyOf } from '../../../src/core/wireguard/keys.js';
import { errnoOf, formatSet, parseGet, parseGetBytes } from '../../../src/core/wireguard/uapi.js';

test('key conversions and public key derivation agree with each other', () => {
  const k = generateKeyPair();
  assert.equal(publicKeyOf(k.privateKey), k.publicKey);
  assert.equal(hexToKey(keyToHex(k.publicKey)), k.publicKey);
});

test('UAPI get responses parse into peers with endpoint, handshake and counters', () => {
  const k = generateKeyPair().publicKey;
  const text = `private_key=${'a'.repeat(64)}\nlisten_port=51820\npublic_key=${keyToHex(k)}\nendpoint=203.0.113.20:41003\nlast_handshake_time_sec=100\nlast_handshake_time_nsec=500000000\nrx_bytes=92\ntx_bytes=180\npersistent_keepalive_interval=25\nallowed_ip=10.99.0.3/32\nerrno=0\n\n`;
  const dev = parseGet(text);
  assert.equal(dev.listenPort, 51820);
  assert.deepEqual(dev.peers, [{ publicKey: k, endpoint: Endpoint.parse('203.0.113.20:41003'), allowedIps: ['10.99.0.3/32'], persistentKeepalive: 25, lastHandshakeMs: 100_500, rxBytes: 92, txBytes: 180 }]);
});

test('UAPI set: the keepalive reset that makes WireGuard send at once is two assignments in order', () => {
  const k = generateKeyPair().publicKey;
  const text = formatSet({ peers: [{ publicKey: k, endpoint: Endpoint.parse('1.2.3.4:5'), persistentKeepalive: 0 }, { publicKey: k, persistentKeepalive: 25 }] });
  assert.match(text, /^set=1\n/);
  assert.ok(text.indexOf('persistent_keepalive_interval=0') < text.indexOf('persistent_keepalive_interval=25'));
  assert.ok(text.endsWith('\n\n'));
});

test('wg show dump parses like the UAPI', () => {
  const k = generateKeyPair().publicKey;
  const dump = `priv\tpub\t51820\toff\n${k}\t(none)\t203.0.113.20:41003\t10.99.0.3/32\t100\t92\t180\t25\n`;
  assert.deepEqual(parseDump(dump).peers[0], { publicKey: k, endpoint: Endpoint.parse('203.0.113.20:41003'), allowedIps: ['10.99.0.3/32'], lastHandshakeMs: 100_000, rxBytes: 92, txBytes: 180, persistentKeepalive: 25 });
});

test('UAPI set refuses a value with a line break or "=" and a key that is no key: the second line of defence behind the schemas (issue 10, finding 13)', () => {
  const k = generateKeyPair().publicKey;
  assert.throws(() => formatSet({ peers: [{ publicKey: k, allowedIps: ['10.0.0.1/32\nprivate_key=00'] }] }), /allowed_ip "10\.0\.0\.1\/32\\nprivate_key=00" cannot be sent to WireGuard: it contains a line break or "="/);
  assert.throws(() => formatSet({ peers: [{ publicKey: k, allowedIps: ['10.0.0.1/32=x'] }] }), /allowed_ip .* contains a line break or "="/);
  assert.throws(() => formatSet({ peers: [{ publicKey: `${k}\nremove=true` }] }), /public key .* is not a WireGuard key/);
  assert.throws(() => formatSet({ privateKey: 'short' }), /private key "short" is not a WireGuard key/);
  assert.throws(() => formatSet({ listenPort: 70000 }), /listen_port 70000 must be a whole number from 0 to 65535/);
  assert.throws(() => formatSet({ peers: [{ publicKey: k, persistentKeepalive: 1.5 }] }), /persistent_keepalive_interval 1\.5 must be a whole number/);
  assert.match(formatSet({ peers: [{ publicKey: k, allowedIps: ['10.0.0.1/32', 'fd00::/8'] }] }), /allowed_ip=10\.0\.0\.1\/32\nallowed_ip=fd00::\/8\n/);
});

test('wg show dump: short or garbage lines are refused with the line and what is missing, never a TypeError', () => {
  const k = generateKeyPair().publicKey;
  const head = 'priv\tpub\t51820\toff';
  const cases: [string, RegExp][] = [
    ['', /line 1: the interface line has 1 tab-separated fields, expected 4/],
    ['garbage', /line 1: .*expected 4/],
    [`${head}\n${k}`, /line 2: a peer line has 1 tab-separated fields, expected 8/],
    [`${head}\n${k}\t(none)\t203.0.113.20:41003`, /line 2: a peer line has 3 tab-separated fields/],
    [`${head}\n${k}\t(none)\t(none)\t(none)\t0\t0\t0\toff\nshort\tline`, /line 3: a peer line has 2/],
    [`${head}\nnot-a-key\t(none)\t(none)\t(none)\t0\t0\t0\toff`, /line 2: the peer's public key is not a WireGuard key/],
    [`${head}\n${k}\t(none)\t(none)\t(none)\tsoon\t0\t0\toff`, /line 2: latest handshake is not a number/],
    ['priv\tpub\tport\toff', /line 1: the listen port is not a number/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseDump(text),
      (err: unknown) => err instanceof DeviceError && message.test(err.message),
      `for ${JSON.stringify(text)}`,
    );
  }
  // Blank lines between peers are what a trailing newline leaves; they are not peers.
  assert.equal(parseDump(`${head}\n${k}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n\n`).peers.length, 1);
});

test('UAPI get read again: unchanged peers keep their parsed state in any order, a changed line is read anew, the errno line is found at the end', () => {
  const keys = [0, 1, 2].map(() => generateKeyPair().publicKey);
  const block = (i: number, rx: number, endpoint: string) =>
    `public_key=${keyToHex(keys[i])}\nendpoint=${endpoint}\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\nrx_bytes=${rx}\ntx_bytes=0\npersistent_keepalive_interval=0\nallowed_ip=10.99.0.${i + 2}/32\n`;
  const response = (blocks: string[], errno = 0) => Buffer.from(`private_key=${'b'.repeat(64)}\nlisten_port=51820\n${blocks.join('')}errno=${errno}\n\n`, 'latin1');
  const first = parseGetBytes(response([block(0, 10, '203.0.113.1:1000'), block(1, 10, '203.0.113.2:2000'), block(2, 10, '203.0.113.3:3000')]));
  // wireguard-go lists its peers in a different order each read (a Go map).
  const second = parseGetBytes(response([block(2, 10, '203.0.113.3:3000'), block(0, 99, '203.0.113.1:1000'), block(1, 10, '198.51.100.7:4000')]));
  const byKey = (d: typeof first, i: number) => d.peers.find((p) => p.publicKey === keys[i])!;
  assert.equal(byKey(second, 2), byKey(first, 2), 'an idle peer is the same object');
  assert.equal(byKey(second, 0).rxBytes, 99);
  assert.equal(byKey(second, 1).endpoint?.toString(), '198.51.100.7:4000');
  assert.equal(byKey(first, 1).endpoint?.toString(), '203.0.113.2:2000', 'a state once returned never changes');
  assert.deepEqual(second.peers.map((p) => p.publicKey), [keys[2], keys[0], keys[1]]);
  assert.equal(errnoOf(response([block(0, 1, '203.0.113.1:1000')])), 0);
  assert.equal(errnoOf(response([], 22)), 22);
  assert.equal(errnoOf('errno=-5\n\n'), -5);
  assert.equal(errnoOf('listen_port=1\n\n'), -1);
  assert.equal(errnoOf('errno=x\n\n'), -1);
});
