import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MeshPeer } from '../../../src/agent/mesh-peer.js';
import { createLogger } from '../../../src/core/log.js';
import type { PathCommand, PathEvent } from '../../../src/core/protocol.js';
import type { WireGuardDevice } from '../../../src/core/wireguard/device.js';
import type { DeviceState, DeviceUpdate, PeerState } from '../../../src/core/wireguard/uapi.js';

const PEER = 'B'.repeat(43) + '=';
const RELAY = '203.0.113.2:52000';
const DIRECT = '203.0.113.20:51820';

/**
 * A device that behaves as wireguard-go does where the agent relies on it: a persistent-keepalive
 * interval going from 0 to non-zero sends a keepalive (32 bytes) to wherever the peer points.
 */
class FakeDevice implements WireGuardDevice {
  readonly ifname = 'fake0';
  readonly kind = 'uapi';
  peer: PeerState = { publicKey: PEER, allowedIps: ['10.99.0.3/32'], persistentKeepalive: 25, lastHandshakeMs: Date.now(), rxBytes: 1000, txBytes: 1000, endpoint: RELAY };
  /** Where each keepalive went. */
  sentTo: (string | undefined)[] = [];
  async get(): Promise<DeviceState> {
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
          this.sentTo.push(this.peer.endpoint);
          this.peer.txBytes += 32;
        }
        this.peer.persistentKeepalive = u.persistentKeepalive;
      }
    }
  }
  /** The peer's packet arrives from `from`: WireGuard authenticates it and moves the endpoint there. */
  receive(from: string): void {
    this.peer.rxBytes += 32;
    this.peer.endpoint = from;
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
  const peer = new MeshPeer(
    { publicKey: PEER, name: 'b', kind: 'agent', allowedIps: ['10.99.0.3/32'], endpoint: null, handshakeAgeMs: null, listenPort: 51820 },
    { device, keepalive: () => 25, emit: (ev) => events.push(ev), changed: () => undefined, log: createLogger('test') },
  );
  return { peer, events };
}

const cmd = (c: Partial<PathCommand> & Pick<PathCommand, 'seq' | 'mode'>): PathCommand => ({ type: 'path', publicKey: PEER, endpoint: null, relay: null, relayId: null, windowMs: 2000, holdMs: 50, ...c });

test('a retry from the relay gets ready without touching the path, punches the candidate on the hub\'s word and keeps the relayed session; with no answer it points back at the relay after the hold; an answer is evidence', async () => {
  const device = new FakeDevice();
  const { peer, events } = meshPeer(device);
  await peer.apply(cmd({ seq: 1, mode: 'relay', relay: RELAY, relayId: 'r1' }), device.peer);
  device.peer.lastHandshakeMs = Date.now(); // the session through the relay is up
  device.sentTo = [];
  const attempt = cmd({ seq: 2, mode: 'attempt', endpoint: DIRECT, relay: RELAY, relayId: 'r1', holdMs: 50 });
  await peer.apply(attempt, device.peer);
  assert.deepEqual(events.map((e) => [e.event, e.seq]), [['ready', 2]]);
  assert.deepEqual(device.sentTo, [], 'getting ready sends nothing');
  assert.equal(device.peer.endpoint, RELAY, 'and the data keeps going through the relay');
  const t0 = Date.now();
  await peer.apply({ ...attempt, mode: 'punch' }, device.peer);
  assert.deepEqual(device.sentTo, [DIRECT], 'the punch went to the candidate');
  assert.ok(device.peer.lastHandshakeMs > 0, 'the relayed session was kept (no re-add)');
  await peer.tick(device.peer, t0 + 20);
  assert.equal(device.peer.endpoint, DIRECT, 'both sides point direct during the hold, so their packets cross');
  await peer.tick(device.peer, t0 + 100);
  assert.equal(device.peer.endpoint, RELAY, 'after the hold the data goes through the relay again');

  // The peer's answer comes in directly later in the window: WireGuard moves there, and that is the evidence.
  device.receive(DIRECT);
  await peer.tick(device.peer, t0 + 300);
  assert.deepEqual(events.filter((e) => e.seq === 2).map((e) => [e.event, e.endpoint]), [['ready', null], ['direct-rx', DIRECT]]);
  assert.equal(device.sentTo.at(-1), DIRECT, 'and we answer on the direct path');
});

test('an answer that comes after our window ended still counts: the hub waits for the late side', async () => {
  const device = neverContacted();
  const { peer, events } = meshPeer(device);
  const attempt = cmd({ seq: 1, mode: 'attempt', endpoint: DIRECT, windowMs: 600, holdMs: 600 });
  await peer.apply(attempt, device.peer);
  await peer.apply({ ...attempt, mode: 'punch' }, device.peer);
  assert.deepEqual(device.sentTo, [DIRECT]);
  const start = Date.now();
  await peer.tick(device.peer, start + 700);
  assert.deepEqual(events.map((e) => e.event), ['ready', 'failed'], 'our window ended with nothing heard');
  assert.equal(peer.busy, true, 'still watching closely until the hub decides');
  device.receive(DIRECT); // the peer's agent was busy and punched late
  await peer.tick(device.peer, start + 900);
  assert.deepEqual(events.map((e) => e.event), ['ready', 'failed', 'direct-rx']);
  assert.equal(events[2].endpoint, DIRECT);
  assert.ok(device.sentTo.length >= 2, 'and we answer so that the peer has its evidence too');
});

test('a peer that punches before the hub\'s punch reaches us is the answer: we answer where its packets came from, not where the hub guessed', async () => {
  const device = neverContacted();
  const { peer, events } = meshPeer(device);
  const attempt = cmd({ seq: 1, mode: 'attempt', endpoint: DIRECT, windowMs: 2000, holdMs: 2000 });
  await peer.apply(attempt, device.peer);
  assert.deepEqual(device.sentTo, [], 'getting ready sends nothing');
  assert.equal(device.peer.endpoint, DIRECT, 'but points at the candidate');
  // Measured in the NAT matrix under load: the peer's agent got the punch 60 ms sooner. Its
  // handshake comes from the port its symmetric NAT chose for us, which the hub could not know;
  // pointing at the hub's guess again would send our answer into a filter.
  const realPort = '203.0.113.20:14782';
  device.receive(realPort);
  await peer.apply({ ...attempt, mode: 'punch' }, device.peer);
  assert.deepEqual(events.map((e) => [e.event, e.endpoint]), [['ready', null], ['direct-rx', realPort]]);
  assert.deepEqual(device.sentTo, [realPort], 'our punch answers the peer where it is');
  assert.equal(device.peer.endpoint, realPort);
});

test('a punch that never comes (the hub went away between the steps) leaves the committed relay in place', async () => {
  const device = new FakeDevice();
  const { peer, events } = meshPeer(device);
  await peer.apply(cmd({ seq: 1, mode: 'relay', relay: RELAY, relayId: 'r1' }), device.peer);
  await peer.apply(cmd({ seq: 2, mode: 'attempt', endpoint: DIRECT, relay: RELAY, relayId: 'r1', holdMs: 50 }), device.peer);
  await peer.tick(device.peer, Date.now() + 5000);
  assert.equal(peer.busy, true, 'still waiting for the punch');
  await peer.tick(device.peer, Date.now() + 10_100);
  assert.equal(peer.path(), 'relaying');
  assert.equal(device.peer.endpoint, RELAY);
  assert.deepEqual(events.map((e) => e.event), ['ready']);
  // A punch for the abandoned attempt is ignored.
  device.sentTo = [];
  await peer.apply(cmd({ seq: 2, mode: 'punch', endpoint: DIRECT, relay: RELAY, relayId: 'r1', holdMs: 50 }), device.peer);
  assert.deepEqual(device.sentTo, []);
});
