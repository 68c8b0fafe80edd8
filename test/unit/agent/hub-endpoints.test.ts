import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HubEndpoints } from '../../../src/agent/hub-endpoints.js';
import { createLogger } from '../../../src/core/log.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import type { PeerState } from '../../../src/core/wireguard/uapi.js';
import { RecordingDevice } from '../recording-device.js';

const HUB = 'H'.repeat(43) + '=';


const hubPeer = (lastHandshakeMs: number): PeerState => ({ publicKey: HUB, endpoint: Endpoint.parse('203.0.113.2:51820'), allowedIps: [], persistentKeepalive: 25, lastHandshakeMs, rxBytes: 0, txBytes: 0 });

test('a hub quiet on its first endpoint for 5 s is tried on the next, and WireGuard is made to send at once', async () => {
  const dev = new RecordingDevice();
  const h = new HubEndpoints(['203.0.113.2:51820', '[2001:db8::2]:51820'], dev, createLogger('test', 'silent'), 0);
  await h.check(hubPeer(0), false, 25, 4900);
  assert.equal(dev.sets.length, 0, 'wireguard-go retries its handshake after 5 s anyway: not sooner');
  await h.check(hubPeer(0), false, 25, 5000);
  assert.deepEqual(dev.sets[0].peers?.map((p) => [p.endpoint?.toString(), p.persistentKeepalive]), [['[2001:db8::2]:51820', 0], [undefined, 25]], 'the IPv6 endpoint, and keepalive 0 -> 25 to send now');
  await h.check(hubPeer(0), false, 25, 9000);
  assert.equal(dev.sets.length, 1, 'each endpoint gets its 5 s');
  await h.check(hubPeer(0), false, 25, 10_000);
  assert.equal(dev.sets[1].peers?.[0].endpoint?.toString(), '203.0.113.2:51820', 'round and round until one answers');
});

test('a hub that answers, or a control connection that is up, is never switched; one endpoint has nothing to switch to', async () => {
  const dev = new RecordingDevice();
  const h = new HubEndpoints(['203.0.113.2:51820', '[2001:db8::2]:51820'], dev, createLogger('test', 'silent'), 0);
  await h.check(hubPeer(100_000), false, 25, 103_000);
  await h.check(hubPeer(0), true, 25, 200_000);
  assert.equal(dev.sets.length, 0);
  const one = new HubEndpoints(['203.0.113.2:51820'], dev, createLogger('test', 'silent'), 0);
  await one.check(hubPeer(0), false, 25, 60_000);
  assert.equal(dev.sets.length, 0);
});
