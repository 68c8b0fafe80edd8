import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MeshPeer } from '../../../src/agent/mesh-peer.js';
import type { KindId } from '../../../src/core/candidates/index.js';
import { createLogger } from '../../../src/core/log.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import type { PathCommand, PathEvent } from '../../../src/core/protocol.js';
import type { WireGuardDevice } from '../../../src/core/wireguard/device.js';
import type { DeviceState, DeviceUpdate, PeerState } from '../../../src/core/wireguard/uapi.js';

const PEER = 'B'.repeat(43) + '=';
const RELAY = '203.0.113.2:52000';
const DIRECT = '203.0.113.20:51820';
const E = (s: string) => Endpoint.parse(s);

/**
 * A device that behaves as wireguard-go does where the agent relies on it: a persistent-keepalive
 * interval going from 0 to non-zero sends a keepalive (32 bytes) to wherever the peer points.
 */
class FakeDevice implements WireGuardDevice {
  readonly ifname = 'fake0';
  readonly kind = 'uapi';
  peer: PeerState = { publicKey: PEER, allowedIps: ['10.99.0.3/32'], persistentKeepalive: 25, lastHandshakeMs: Date.now(), rxBytes: 1000, txBytes: 1000, endpoint: E(RELAY) };
  /** Where each keepalive went. */
  sentTo: (string | undefined)[] = [];
  reads = 0;
  async get(): Promise<DeviceState> {
    this.reads++;
    return { listenPort: 51820, fwmark: 0, peers: [{ ...this.peer }] };
  }
  async set(update: DeviceUpdate): Promise<void> {
    for (const u of update.peers ?? []) {
      if (u.remove) {
        this.peer = { ...this.peer, endpoint: undefined, lastHandshakeMs: 0, persistentKeepalive: 0, rxBytes: 0, txBytes: 0 };
        continue;
      }
      if (u.endpoint !== undefined) this.peer.endpoint = u.endpoint;
      if (u.persistentKeepalive !== undefined) {
        if (this.peer.persistentKeepalive === 0 && u.persistentKeepalive > 0) {
          this.sentTo.push(this.peer.endpoint?.toString());
          this.peer.txBytes += 32;
        }
        this.peer.persistentKeepalive = u.persistentKeepalive;
      }
    }
  }
  /** The peer's packet arrives from `from`: WireGuard authenticates it and moves the endpoint there. */
  receive(from: string): void {
    this.peer.rxBytes += 32;
    this.peer.endpoint = E(from);
  }
  get endpoint(): string | undefined {
    return this.peer.endpoint?.toString();
  }
}

/** A device whose peer was only added (what the agent does when the hub names a peer): no session, nothing sent or received. */
function neverContacted(): FakeDevice {
  const device = new FakeDevice();
  device.peer = { ...device.peer, endpoint: undefined, lastHandshakeMs: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0 };
  return device;
}

function meshPeer(device: FakeDevice) {
  const events: PathEvent[] = [];
  const probes: string[] = [];
  const peer = new MeshPeer(
    { publicKey: PEER, name: 'b', kind: 'agent', allowedIps: ['10.99.0.3/32'], endpoint: null, handshakeAgeMs: null, listenPort: 51820 },
    { device, keepalive: () => 25, emit: (ev) => events.push(ev), changed: () => undefined, log: createLogger('test'), probe: (to) => probes.push(to.toString()) },
  );
  return { peer, events, probes };
}

const useRelay = (seq: number, relayId = 'a1'): PathCommand => ({ type: 'path', step: 'use', publicKey: PEER, seq, path: { via: 'relay', endpoint: E(RELAY), relayId } });
const useDirect = (seq: number, endpoint = DIRECT, kind: KindId = 'public4'): PathCommand => ({ type: 'path', step: 'use', publicKey: PEER, seq, path: { via: 'direct', kind, endpoint: E(endpoint) } });
const prepare = (seq: number, o: { endpoint?: string; kind?: KindId; fallback?: string; relayId?: string; windowMs?: number; holdMs?: number; initiates?: boolean } = {}): PathCommand => ({
  type: 'path',
  step: 'prepare',
  publicKey: PEER,
  seq,
  candidate: { kind: o.kind ?? 'public4', endpoint: E(o.endpoint ?? DIRECT) },
  fallback: o.fallback ? { endpoint: E(o.fallback), relayId: o.relayId ?? 'a1' } : null,
  windowMs: o.windowMs ?? 2000,
  holdMs: o.holdMs ?? 50,
  ...(o.initiates === undefined ? {} : { initiates: o.initiates }),
});
const punch = (seq: number): PathCommand => ({ type: 'path', step: 'punch', publicKey: PEER, seq });
const summary = (events: PathEvent[]) => events.map((e) => [e.event, e.seq, e.event === 'heard' ? e.endpoint.toString() : null]);

test("a retry from the relay gets ready without touching the path, punches the candidate on the hub's word and keeps the relayed session; with no answer it points back at the relay after the hold; an answer is evidence", async () => {
  const device = new FakeDevice();
  const { peer, events } = meshPeer(device);
  await peer.apply(useRelay(1), device.peer);
  device.peer.lastHandshakeMs = Date.now(); // the session through the relay is up
  device.sentTo = [];
  await peer.apply(prepare(2, { fallback: RELAY }), device.peer);
  assert.deepEqual(summary(events), [['ready', 2, null]]);
  assert.deepEqual(device.sentTo, [], 'getting ready sends nothing');
  assert.equal(device.endpoint, RELAY, 'and the data keeps going through the relay');
  const t0 = Date.now();
  const reads = device.reads;
  await peer.apply(punch(2), device.peer);
  assert.deepEqual(device.sentTo, [DIRECT], 'the punch went to the candidate');
  assert.equal(device.reads - reads, 1, 'one reading right after the punch: relayed packets keep arriving, only later ones can tell');
  assert.ok(device.peer.lastHandshakeMs > 0, 'the relayed session was kept (no re-add)');
  await peer.tick(device.peer, t0 + 20);
  assert.equal(device.endpoint, DIRECT, 'both sides point direct during the hold, so their packets cross');
  await peer.tick(device.peer, t0 + 100);
  assert.equal(device.endpoint, RELAY, 'after the hold the data goes through the relay again');

  // The peer's answer comes in directly later in the window: WireGuard moves there, and that is the evidence.
  device.receive(DIRECT);
  await peer.tick(device.peer, t0 + 300);
  assert.deepEqual(summary(events), [['ready', 2, null], ['heard', 2, DIRECT]]);
  assert.equal(device.sentTo.at(-1), DIRECT, 'and we answer on the direct path');
});

test("toward a mapped port from the relay, the mapped side sends nothing until the peer's packet arrives directly, then answers at once; the other side punches", async () => {
  // The mapped side (initiates: false): its own keepalive toward the peer would take the conntrack
  // tuple the peer's packet through the mapping needs.
  const device = new FakeDevice();
  const { peer, events } = meshPeer(device);
  await peer.apply(useRelay(1), device.peer);
  device.sentTo = [];
  await peer.apply(prepare(2, { kind: 'mapped', fallback: RELAY, initiates: false }), device.peer);
  const t0 = Date.now();
  await peer.apply(punch(2), device.peer);
  await peer.tick(device.peer, t0 + 20);
  assert.deepEqual(device.sentTo, [], 'no punch toward the peer');
  assert.equal(device.endpoint, RELAY, 'the data keeps going through the relay');
  device.receive(DIRECT);
  await peer.tick(device.peer, t0 + 120);
  assert.deepEqual(summary(events), [['ready', 2, null], ['heard', 2, DIRECT]]);
  assert.deepEqual(device.sentTo, [DIRECT], 'answered on the direct path as soon as the peer was heard there');

  // The side that sends to the mapping (initiates: true) punches on the hub's word, as before.
  const other = new FakeDevice();
  const b = meshPeer(other);
  await b.peer.apply(useRelay(1), other.peer);
  other.sentTo = [];
  await b.peer.apply(prepare(2, { kind: 'mapped', fallback: RELAY, initiates: true }), other.peer);
  await b.peer.apply(punch(2), other.peer);
  assert.deepEqual(other.sentTo, [DIRECT]);
});

test('from the relay, a punched kind keeps both sides sending whatever the hub names as initiator (a live session has no handshake to cross)', async () => {
  const device = new FakeDevice();
  const { peer } = meshPeer(device);
  await peer.apply(useRelay(1), device.peer);
  device.sentTo = [];
  await peer.apply(prepare(2, { kind: 'public4', fallback: RELAY, initiates: false }), device.peer);
  await peer.apply(punch(2), device.peer);
  assert.deepEqual(device.sentTo, [DIRECT]);
});

test('relayed packets that arrive while the punch goes out are never evidence; a relayed packet is never evidence at all', async () => {
  const device = new FakeDevice();
  const { peer, events } = meshPeer(device);
  await peer.apply(useRelay(1), device.peer);
  await peer.apply(prepare(2, { fallback: RELAY }), device.peer);
  const t0 = Date.now();
  await peer.apply(punch(2), device.peer);
  device.receive(RELAY);
  await peer.tick(device.peer, t0 + 20);
  assert.deepEqual(summary(events), [['ready', 2, null]]);
  await peer.tick(device.peer, t0 + 2100);
  assert.deepEqual(summary(events), [['ready', 2, null], ['unheard', 2, null]]);
  assert.equal(device.endpoint, RELAY);
});

test('an answer that comes after our window ended still counts: the hub waits for the late side', async () => {
  const device = neverContacted();
  const { peer, events } = meshPeer(device);
  await peer.apply(prepare(1, { windowMs: 600, holdMs: 600 }), device.peer);
  await peer.apply(punch(1), device.peer);
  assert.deepEqual(device.sentTo, [DIRECT]);
  const start = Date.now();
  await peer.tick(device.peer, start + 700);
  assert.deepEqual(events.map((e) => e.event), ['ready', 'unheard'], 'our window ended with nothing heard');
  assert.equal(peer.busy, true, 'still watching closely until the hub decides');
  device.receive(DIRECT); // the peer's agent was busy and punched late
  await peer.tick(device.peer, start + 900);
  assert.deepEqual(summary(events), [['ready', 1, null], ['unheard', 1, null], ['heard', 1, DIRECT]]);
  assert.ok(device.sentTo.length >= 2, 'and we answer so that the peer has its evidence too');
});

test("a peer that punches before the hub's punch reaches us is the answer: we answer where its packets came from, not where the hub guessed", async () => {
  const device = neverContacted();
  const { peer, events } = meshPeer(device);
  await peer.apply(prepare(1, { windowMs: 2000, holdMs: 2000 }), device.peer);
  assert.deepEqual(device.sentTo, [], 'getting ready sends nothing');
  assert.equal(device.endpoint, DIRECT, 'but points at the candidate');
  // Measured in the NAT matrix under load: the peer's agent got the punch 60 ms sooner. Its
  // handshake comes from the port its symmetric NAT chose for us, which the hub could not know;
  // pointing at the hub's guess again would send our answer into a filter.
  const realPort = '203.0.113.20:14782';
  device.receive(realPort);
  await peer.apply(punch(1), device.peer);
  assert.deepEqual(summary(events), [['ready', 1, null], ['heard', 1, realPort]]);
  assert.deepEqual(device.sentTo, [realPort], 'our punch answers the peer where it is');
  assert.equal(device.endpoint, realPort);
});

test('with a live session and no relay, the first reading after pointing at the candidate is the baseline: packets that crossed the change prove nothing', async () => {
  const device = new FakeDevice();
  device.peer.endpoint = E('203.0.113.20:40000');
  const { peer, events } = meshPeer(device);
  await peer.apply(useDirect(1, '203.0.113.20:40000'), device.peer);
  device.peer.lastHandshakeMs = Date.now();
  await peer.apply(prepare(2, { endpoint: DIRECT }), device.peer);
  device.peer.rxBytes += 32; // arrived around our device update: before or after, nobody can tell
  const t0 = Date.now();
  await peer.tick(device.peer, t0 + 10);
  assert.deepEqual(summary(events), [['ready', 2, null]], 'not evidence');
  await peer.apply(punch(2), device.peer);
  device.receive(DIRECT);
  await peer.tick(device.peer, t0 + 60);
  assert.deepEqual(summary(events), [['ready', 2, null], ['heard', 2, DIRECT]]);
});

test('an IPv4 packet during an IPv6 attempt proves nothing about IPv6', async () => {
  const device = neverContacted();
  const { peer, events } = meshPeer(device);
  const v6 = '[2001:db8::20]:51820';
  await peer.apply(prepare(1, { endpoint: v6, kind: 'public6', windowMs: 2000, holdMs: 2000 }), device.peer);
  await peer.apply(punch(1), device.peer);
  const t0 = Date.now();
  device.receive(DIRECT);
  await peer.tick(device.peer, t0 + 50);
  assert.deepEqual(summary(events), [['ready', 1, null]]);
  device.receive(v6);
  await peer.tick(device.peer, t0 + 100);
  assert.deepEqual(summary(events), [['ready', 1, null], ['heard', 1, v6]]);
  await peer.apply(useDirect(2, v6, 'public6'), device.peer);
  assert.equal(peer.report(device.peer).kind, 'public6', 'status says which candidate the path runs over');
  assert.equal(peer.show(), 'direct');
});

test('a punch that never comes (the hub went away between the steps) leaves the committed relay in place', async () => {
  const device = new FakeDevice();
  const { peer, events } = meshPeer(device);
  await peer.apply(useRelay(1), device.peer);
  await peer.apply(prepare(2, { fallback: RELAY }), device.peer);
  await peer.tick(device.peer, Date.now() + 5000);
  assert.equal(peer.busy, true, 'still waiting for the punch');
  await peer.tick(device.peer, Date.now() + 10_100);
  assert.equal(peer.show(), 'relaying');
  assert.equal(device.endpoint, RELAY);
  assert.deepEqual(events.map((e) => e.event), ['ready']);
  // A punch for the abandoned attempt is ignored.
  device.sentTo = [];
  await peer.apply(punch(2), device.peer);
  assert.deepEqual(device.sentTo, []);
});

test('the relay: a new allocation starts a fresh session, the same one keeps it; relay-ok once the peer is heard through it; a direct packet is reported and the data stays on the relay', async () => {
  const device = new FakeDevice();
  device.peer.endpoint = E(DIRECT);
  const { peer, events } = meshPeer(device);
  await peer.apply(useRelay(1, 'a1'), device.peer);
  assert.equal(device.peer.lastHandshakeMs, 0, 'a new allocation learns our port only from a handshake: the peer was re-added');
  assert.deepEqual(device.sentTo, [RELAY]);
  assert.equal(peer.show(), 'relaying');
  device.receive(RELAY);
  await peer.tick(device.peer, Date.now());
  assert.deepEqual(summary(events), [['relay-ok', 1, null]]);
  assert.equal(peer.show(), 'relayed');
  device.peer.lastHandshakeMs = Date.now();
  await peer.apply(useRelay(2, 'a1'), device.peer);
  assert.ok(device.peer.lastHandshakeMs > 0, 'the same allocation again: the session goes on');
  assert.equal(peer.show(), 'relayed');
  device.receive(DIRECT);
  await peer.tick(device.peer, Date.now());
  assert.deepEqual(summary(events).at(-1), ['heard', 2, DIRECT], 'worth an attempt: the hub decides');
  assert.equal(device.endpoint, RELAY, 'until then the data goes through the relay');
});

test('a dead path is reported once as lost: unanswered 12 s after the probe that K + 5 s of nothing sends, or 12 s of data with nothing back', async () => {
  const device = new FakeDevice();
  const { peer, events, probes } = meshPeer(device);
  const t0 = Date.now();
  await peer.apply(useDirect(4), device.peer);
  await peer.tick(device.peer, t0 + 1000); // the first reading: the peer's bytes so far count as heard now
  await peer.tick(device.peer, t0 + 29_000);
  assert.deepEqual(probes, []);
  await peer.tick(device.peer, t0 + 31_500);
  assert.deepEqual(probes, ['10.99.0.3']);
  await peer.tick(device.peer, t0 + 43_000);
  assert.deepEqual(events, []);
  await peer.tick(device.peer, t0 + 43_600);
  assert.deepEqual(summary(events), [['lost', 4, null]], 'named by the command that committed the path');
  await peer.tick(device.peer, t0 + 60_000);
  assert.equal(events.length, 1, 'once');
  device.receive(DIRECT);
  await peer.tick(device.peer, t0 + 61_000);
  device.peer.txBytes += 1000; // data out, nothing back
  await peer.tick(device.peer, t0 + 70_000);
  assert.equal(events.length, 1);
  await peer.tick(device.peer, t0 + 73_100);
  assert.deepEqual(summary(events).at(-1), ['lost', 4, null]);
});

test('proxied: the peer entry goes and its addresses move to the hub peer; an attempt brings the entry back', async () => {
  const device = new FakeDevice();
  const { peer } = meshPeer(device);
  await peer.apply({ type: 'path', step: 'use', publicKey: PEER, seq: 1, path: { via: 'hub' } }, device.peer);
  assert.equal(peer.viaHub, true);
  assert.equal(peer.show(), 'proxied');
  assert.equal(device.peer.lastHandshakeMs, 0, 'removed');
  await peer.apply(prepare(2), device.peer);
  assert.equal(peer.viaHub, false);
  assert.equal(device.endpoint, DIRECT);
  assert.equal(peer.show(), 'trying');
});

test('a tcp-relay path points the peer at the shim port of its allocation, re-added so it handshakes through it; relay-ok counts there; leaving it for direct closes the channel', async () => {
  const device = new FakeDevice();
  const opened: string[] = [];
  const closed: string[] = [];
  const events: PathEvent[] = [];
  const peer = new MeshPeer(
    { publicKey: PEER, name: 'b', kind: 'agent', allowedIps: ['10.99.0.3/32'], endpoint: null, handshakeAgeMs: null, listenPort: 51820 },
    {
      device,
      keepalive: () => 25,
      emit: (ev) => events.push(ev),
      changed: () => undefined,
      log: createLogger('test'),
      stream: {
        openAllocation: async (id) => {
          opened.push(id);
          return E('127.0.0.1:41234');
        },
        closeAllocation: (id) => closed.push(id),
      },
    },
  );
  const id = '00112233aabbccdd';
  await peer.apply({ type: 'path', step: 'use', publicKey: PEER, seq: 1, path: { via: 'relay', endpoint: E(RELAY), relayId: id, kind: 'tcp-relay' } }, device.peer);
  assert.deepEqual(opened, [id]);
  assert.equal(device.endpoint, '127.0.0.1:41234', 'the relay address the hub names is not where this side sends');
  assert.deepEqual(device.sentTo, ['127.0.0.1:41234'], 're-added: the handshake goes through the stream at once');
  device.receive('127.0.0.1:41234');
  await peer.tick(device.peer, Date.now());
  assert.deepEqual(summary(events), [['relay-ok', 1, null]]);
  // The same allocation again (a resend) keeps the channel.
  await peer.apply({ type: 'path', step: 'use', publicKey: PEER, seq: 2, path: { via: 'relay', endpoint: E(RELAY), relayId: id, kind: 'tcp-relay' } }, device.peer);
  assert.deepEqual(closed, []);
  await peer.apply(useDirect(3), device.peer);
  assert.deepEqual(closed, [id]);
});

test('a tcp-relay path on an agent without a stream transport is refused with the reason', async () => {
  const device = new FakeDevice();
  const { peer } = meshPeer(device);
  await assert.rejects(peer.apply({ type: 'path', step: 'use', publicKey: PEER, seq: 1, path: { via: 'relay', endpoint: E(RELAY), relayId: '00112233aabbccdd', kind: 'tcp-relay' } }, device.peer), /no stream transport/);
});

test('a new allocation on the same relay and the same ports (the hub re-allocated a silent relay path) starts a fresh session; a resend of it keeps the session', async () => {
  const device = new FakeDevice();
  const { peer } = meshPeer(device);
  await peer.apply(useRelay(1, 'a1'), device.peer);
  device.receive(RELAY);
  await peer.tick(device.peer, Date.now());
  device.peer.lastHandshakeMs = Date.now();
  await peer.apply(useRelay(2, 'a1'), device.peer);
  assert.ok(device.peer.lastHandshakeMs > 0, 'the same allocation resent: the session goes on');
  await peer.apply(useRelay(3, 'a2'), device.peer);
  assert.equal(device.peer.lastHandshakeMs, 0, 'allocation a2 latches our side only from a handshake: the peer was re-added');
  assert.equal(device.endpoint, RELAY);
});

test("an idle relayed path whose peer stays quiet is probed at its tunnel address, not torn down; one that stays silent after the probe is reported lost", async () => {
  const device = new FakeDevice();
  const { peer, events, probes } = meshPeer(device);
  await peer.apply(useRelay(1), device.peer);
  const t0 = Date.now();
  device.receive(RELAY);
  await peer.tick(device.peer, t0 + 1000);
  // Only our keepalives go out (each one restarts the peer's own keepalive timer): nothing comes in.
  for (let s = 2; s <= 40; s++) await peer.tick(device.peer, t0 + s * 1000);
  assert.deepEqual(probes, ['10.99.0.3'], 'probed once, at the peer\'s tunnel address');
  assert.ok(!events.some((e) => e.event === 'lost'), 'not lost while the probe may still be answered');
  // The peer's WireGuard answers the probe's data with a keepalive.
  device.receive(RELAY);
  for (let s = 41; s <= 60; s++) await peer.tick(device.peer, t0 + s * 1000);
  assert.ok(!events.some((e) => e.event === 'lost'));
  // Then nothing at all: probed again after K + 5 s, lost 12 s after that.
  for (let s = 61; s <= 110; s++) await peer.tick(device.peer, t0 + s * 1000);
  assert.deepEqual(probes, ['10.99.0.3', '10.99.0.3']);
  assert.deepEqual(events.filter((e) => e.event === 'lost').map((e) => e.seq), [1]);
});
