import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HUB_KEEPALIVE_S, HubKeepalive } from '../../../src/agent/hub-keepalive.js';
import { createLogger } from '../../../src/core/log.js';
import type { PeerState } from '../../../src/core/wireguard/uapi.js';
import { RecordingDevice } from '../recording-device.js';

const HUB = 'H'.repeat(43) + '=';


const hubPeer = (persistentKeepalive: number): PeerState => ({ publicKey: HUB, allowedIps: ['10.99.0.1/32'], persistentKeepalive, lastHandshakeMs: 0, rxBytes: 0, txBytes: 0 });

test('hub keepalive: a longer or disabled keepalive toward the hub becomes 1 s; 1 s is left alone; only the keepalive is touched', async () => {
  const device = new RecordingDevice();
  const k = new HubKeepalive(device, createLogger('test', 'silent'));
  await k.check(hubPeer(25));
  assert.deepEqual(device.sets, [{ peers: [{ publicKey: HUB, persistentKeepalive: HUB_KEEPALIVE_S }] }]);
  await k.check(hubPeer(HUB_KEEPALIVE_S));
  assert.equal(device.sets.length, 1);
  await k.check(hubPeer(0));
  assert.equal(device.sets.length, 2);
  await k.check(undefined);
  assert.equal(device.sets.length, 2);
});
