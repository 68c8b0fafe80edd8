import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MeshPeer } from '../../../src/agent/mesh-peer.js';
import type { PunchTtl } from '../../../src/agent/punch-ttl.js';
import type { KindId } from '../../../src/core/candidates/index.js';
import { createLogger } from '../../../src/core/log.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import type { PathCommand, PathEvent } from '../../../src/core/protocol.js';
import type { WireGuardDevice } from '../../../src/core/wireguard/device.js';
import type { DeviceState, DeviceUpdate, PeerState } from '../../../src/core/wireguard/uapi.js';

const PEER = 'B'.repeat(43) + '=';
const DIRECT = '203.0.113.20:51820';
const E = (s: string) => Endpoint.parse(s);

/**
 * A device with any number of peers, as wireguard-go keeps them, that records what was sent: a
 * keepalive interval going 0 -> non-zero sends a handshake initiation (no session) to wherever the
 * peer points, or a keepalive on the session.
 */
class KeyedDevice implements WireGuardDevice {
  readonly ifname = 'fake0';
  readonly kind = 'uapi';
  peers = new Map<string, PeerState>();
  sent: { key: string; to: string | undefined; what: 'initiation' | 'keepalive' }[] = [];
  async get(): Promise<DeviceState> {
    return { listenPort: 51820, fwmark: 0, peers: [...this.peers.values()].map((p) => ({ ...p })) };
  }
  async set(update: DeviceUpdate): Promise<void> {
    for (const u of update.peers ?? []) {
      if (u.remove) {
        this.peers.delete(u.publicKey);
        continue;
      }
      const p = this.peers.get(u.publicKey) ?? { publicKey: u.publicKey, allowedIps: [], persistentKeepalive: 0, lastHandshakeMs: 0, rxBytes: 0, txBytes: 0 };
      this.peers.set(u.publicKey, p);
      if (u.endpoint !== undefined) p.endpoint = u.endpoint;
      if (u.allowedIps !== undefined) p.allowedIps = [...u.allowedIps];
      if (u.persistentKeepalive !== undefined) {
        if (p.persistentKeepalive === 0 && u.persistentKeepalive > 0) this.sent.push({ key: u.publicKey, to: p.endpoint?.toString(), what: p.lastHandshakeMs > 0 ? 'keepalive' : 'initiation' });
        p.persistentKeepalive = u.persistentKeepalive;
      }
    }
  }
  get peer(): PeerState | undefined {
    return this.peers.get(PEER);
  }
}

/** Records which sends ran with the opening TTL in place, toward where. */
class RecordingTtl implements PunchTtl {
  limitedTo: string[] = [];
  constructor(
    readonly ttl: number | null,
    private readonly device: KeyedDevice,
  ) {}
  async settled(): Promise<void> {}
  async limited<T>(endpoint: Endpoint, send: () => Promise<T>): Promise<T> {
    const before = this.device.sent.length;
    const r = await send();
    for (const s of this.device.sent.slice(before)) this.limitedTo.push(`${s.to}${s.to === endpoint.toString() ? '' : ' (not the endpoint limited!)'}`);
    return r;
  }
}

function setup(ttl?: number | null) {
  const device = new KeyedDevice();
  const punchTtl = ttl === undefined ? undefined : new RecordingTtl(ttl, device);
  const events: PathEvent[] = [];
  const info = { publicKey: PEER, name: 'b', kind: 'agent' as const, allowedIps: ['10.99.0.3/32'], endpoint: null, handshakeAgeMs: null, listenPort: 51820 };
  const peer = new MeshPeer(info, { device, keepalive: () => 25, emit: (ev) => events.push(ev), changed: () => undefined, log: createLogger('test', 'silent'), punchTtl });
  return { device, peer, events, info, punchTtl };
}

const prepare = (seq: number, initiates: boolean | undefined, kind: KindId = 'public4', endpoint = DIRECT): PathCommand => ({ type: 'path', step: 'prepare', publicKey: PEER, seq, candidate: { kind, endpoint: E(endpoint) }, fallback: null, windowMs: 2000, holdMs: 2000, initiates });
const punch = (seq: number): PathCommand => ({ type: 'path', step: 'punch', publicKey: PEER, seq });
const useDirect = (seq: number): PathCommand => ({ type: 'path', step: 'use', publicKey: PEER, seq, path: { via: 'direct', kind: 'public4', endpoint: E(DIRECT) } });

test('the responder opens its NAT with a throwaway initiation, keeps the real peer silent and without addresses, and answers only once the handshake completed', async () => {
  const { device, peer, info } = setup();
  await peer.ensure(undefined);
  await peer.apply(prepare(1, false), device.peer);
  assert.deepEqual(device.peer?.allowedIps, [], 'no addresses: no packet of ours can make WireGuard initiate');
  assert.equal(device.peer?.endpoint?.toString(), DIRECT);
  assert.equal(device.sent.length, 1, 'one packet before ready');
  assert.notEqual(device.sent[0].key, PEER, 'from a throwaway peer, not the real one');
  assert.equal(device.sent[0].to, DIRECT, 'toward the peer, which opens our NAT for it');
  assert.deepEqual([...device.peers.keys()], [PEER], 'and the throwaway peer is gone again');

  // A hub message about the peer during the attempt does not give the addresses back early.
  await peer.ensure(device.peer);
  assert.deepEqual(device.peer?.allowedIps, []);
  await peer.apply(punch(1), device.peer);
  assert.equal(device.sent.length, 1, 'the punch sends nothing on the responder');

  // The initiator's initiation arrives: heard, still silent; its keepalive completes the handshake: answer.
  Object.assign(device.peer!, { rxBytes: 148 });
  await peer.tick(device.peer, Date.now());
  assert.equal(device.sent.length, 1);
  Object.assign(device.peer!, { rxBytes: 180, lastHandshakeMs: Date.now() + 1 });
  await peer.tick(device.peer, Date.now());
  assert.deepEqual(device.sent.slice(1), [{ key: PEER, to: DIRECT, what: 'keepalive' }]);
  assert.deepEqual(device.peer?.allowedIps, info.allowedIps);
});

test('the initiator stays silent until the punch, which is its one initiation; without a role both punch as before', async () => {
  const { device, peer, info } = setup();
  await peer.ensure(undefined);
  await peer.apply(prepare(1, true), device.peer);
  assert.deepEqual(device.sent, [], 'getting ready sends nothing');
  assert.deepEqual(device.peer?.allowedIps, []);
  await peer.apply(punch(1), device.peer);
  assert.deepEqual(device.sent, [{ key: PEER, to: DIRECT, what: 'initiation' }]);
  assert.deepEqual(device.peer?.allowedIps, info.allowedIps);

  const old = setup();
  await old.peer.ensure(undefined);
  await old.peer.apply(prepare(1, undefined), old.device.peer);
  assert.deepEqual(old.device.peer?.allowedIps, info.allowedIps, 'a hub that names no initiator: as before');
  await old.peer.apply(punch(1), old.device.peer);
  assert.deepEqual(old.device.sent, [{ key: PEER, to: DIRECT, what: 'initiation' }]);
});

test('committed direct before the responder answered: it gets its addresses and keepalive with the commit', async () => {
  const { device, peer, info } = setup();
  await peer.ensure(undefined);
  await peer.apply(prepare(1, false), device.peer);
  await peer.apply(punch(1), device.peer);
  Object.assign(device.peer!, { rxBytes: 148 });
  await peer.tick(device.peer, Date.now());
  await peer.apply(useDirect(2), device.peer);
  assert.deepEqual(device.peer?.allowedIps, info.allowedIps);
  assert.equal(device.peer?.persistentKeepalive, 25);
});

test('with an opening TTL, both sides open their NAT across the NATs before ready (a throwaway initiation that dies on the way), and say so; the LAN is never limited', async () => {
  const init = setup(2);
  await init.peer.ensure(undefined);
  await init.peer.apply(prepare(1, true), init.device.peer);
  assert.equal(init.device.sent.length, 1, 'the initiator opens too');
  assert.notEqual(init.device.sent[0].key, PEER, 'with the throwaway peer: the real one stays silent until the punch');
  assert.deepEqual(init.punchTtl!.limitedTo, [DIRECT], 'and only that packet was sent with the low TTL');
  assert.deepEqual(init.events.map((e) => [e.event, e.event === 'ready' ? e.opened : null]), [['ready', true]]);
  await init.peer.apply(punch(1), init.device.peer);
  assert.deepEqual(init.device.sent.slice(1), [{ key: PEER, to: DIRECT, what: 'initiation' }], 'the punch is still the one real initiation');
  assert.deepEqual(init.punchTtl!.limitedTo, [DIRECT], 'at full TTL');

  const lan = setup(2);
  await lan.peer.ensure(undefined);
  await lan.peer.apply(prepare(1, false, 'lan', '192.168.20.3:51820'), lan.device.peer);
  assert.equal(lan.device.sent.length, 1, 'the responder opens on the LAN as always');
  assert.deepEqual(lan.punchTtl!.limitedTo, [], 'at full TTL: there is no NAT between');

  const none = setup(null);
  await none.peer.ensure(undefined);
  await none.peer.apply(prepare(1, true), none.device.peer);
  assert.deepEqual(none.device.sent, [], 'no TTL known: the initiator sends nothing before its punch, as before');
  assert.deepEqual(none.events.map((e) => [e.event, e.event === 'ready' ? e.opened : null]), [['ready', false]]);
});
