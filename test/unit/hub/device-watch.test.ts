import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../../src/core/log.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import type { WireGuardDevice } from '../../../src/core/wireguard/device.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import type { PeerState } from '../../../src/core/wireguard/uapi.js';
import { DeviceWatch } from '../../../src/hub/device-watch.js';

/** What the hub acts on from its device reads: a node's endpoint moving, and its freshness flipping, each told once. */
test('the device watch reports a node that moved or changed freshness once, and never a peer that is no node', async () => {
  const node = generateKeyPair().publicKey;
  const stranger = generateKeyPair().publicKey;
  const peers = new Map<string, PeerState>();
  const put = (key: string, p: Partial<PeerState>) => peers.set(key, { publicKey: key, allowedIps: [], persistentKeepalive: 0, lastHandshakeMs: 0, rxBytes: 0, txBytes: 0, ...peers.get(key), ...p });
  const device: WireGuardDevice = { ifname: 'fake0', kind: 'uapi', get: async () => ({ listenPort: 51820, fwmark: 0, peers: [...peers.values()] }), set: async () => undefined };
  const moves: string[] = [];
  const told: string[] = [];
  const watch = new DeviceWatch({
    device,
    known: (k) => k === node,
    staleAfterMs: () => 60_000,
    onEndpoint: (k, e, prev) => moves.push(`${k === node ? 'node' : 'stranger'} ${prev?.toString() ?? '-'} -> ${e.toString()}`),
    onPeer: (k, p) => told.push(`${k === node ? 'node' : 'stranger'} ${p.lastHandshakeMs > 0 ? 'fresh' : 'stale'}`),
    log: createLogger('test', 'silent'),
  });
  put(node, { endpoint: Endpoint.parse('203.0.113.1:1000') });
  put(stranger, { endpoint: Endpoint.parse('203.0.113.9:9000'), lastHandshakeMs: Date.now() });
  await watch.poll();
  await watch.poll();
  assert.deepEqual(moves, ['node - -> 203.0.113.1:1000']);
  assert.deepEqual(told, ['node stale']);
  put(node, { lastHandshakeMs: Date.now() });
  await watch.poll();
  assert.deepEqual(told, ['node stale', 'node fresh'], 'a handshake makes the node fresh, without a move');
  put(node, { endpoint: Endpoint.parse('198.51.100.4:4000') });
  put(stranger, { endpoint: Endpoint.parse('198.51.100.9:9999') });
  await watch.poll();
  await watch.poll();
  assert.deepEqual(moves, ['node - -> 203.0.113.1:1000', 'node 203.0.113.1:1000 -> 198.51.100.4:4000']);
  put(node, { lastHandshakeMs: Date.now() - 61_000 });
  await watch.poll();
  assert.equal(told.at(-1), 'node fresh', 'the last handshake is still shown as it is');
  assert.equal(told.length, 4, 'going stale is told once');
  assert.equal(watch.peer(stranger)?.endpoint?.toString(), '198.51.100.9:9999', 'every peer is readable, node or not');
});
