import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientPeer } from '../../../src/agent/client-peer.js';
import { createLogger } from '../../../src/core/log.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import type { PeerInfo } from '../../../src/core/protocol.js';
import type { WireGuardDevice } from '../../../src/core/wireguard/device.js';
import type { DeviceState, DeviceUpdate, PeerState } from '../../../src/core/wireguard/uapi.js';
import { FakeClock } from '../fake-clock.js';

const PHONE = 'P'.repeat(43) + '=';
/** The phone's symmetric NAT: one port toward the hub, another toward us (through our router's mapping). */
const TOWARD_HUB = '192.0.3.20:40001';
const TOWARD_US = '192.0.3.20:40002';
const E = (s: string) => Endpoint.parse(s);

/** What wireguard-go does where the client peer relies on it: endpoint moves to an authenticated packet's source. */
class FakeDevice implements WireGuardDevice {
  readonly ifname = 'fake0';
  readonly kind = 'uapi';
  peer: PeerState = { publicKey: PHONE, allowedIps: ['10.99.0.3/32'], persistentKeepalive: 0, lastHandshakeMs: 0, rxBytes: 0, txBytes: 0 };
  constructor(private readonly clock: FakeClock) {}
  async get(): Promise<DeviceState> {
    return { listenPort: 51820, fwmark: 0, peers: [{ ...this.peer }] };
  }
  async set(update: DeviceUpdate): Promise<void> {
    for (const u of update.peers ?? []) {
      if (u.endpoint !== undefined) this.peer.endpoint = u.endpoint;
      if (u.persistentKeepalive !== undefined) this.peer.persistentKeepalive = u.persistentKeepalive;
    }
  }
  /** The phone's handshake (or data) arrives from `from`. */
  receive(from: string, handshake: boolean): void {
    this.peer.endpoint = E(from);
    this.peer.rxBytes += handshake ? 148 : 32;
    if (handshake) this.peer.lastHandshakeMs = this.clock.now();
  }
  reading(): PeerState {
    return { ...this.peer };
  }
}

function setup() {
  const clock = new FakeClock();
  const device = new FakeDevice(clock);
  const info: PeerInfo = { name: 'phone', kind: 'client', publicKey: PHONE, allowedIps: ['10.99.0.3/32'], endpoint: E(TOWARD_HUB), handshakeAgeMs: 0, listenPort: 51000 };
  const peer = new ClientPeer(info, {
    device,
    settings: () => ({ peerKeepalive: 25, staleAfterSec: 120, hubPublicKey: 'H'.repeat(43) + '=', hubAllowedIps: ['10.99.0.1/32'], proxied: false }),
    proxied: () => false,
    changed: () => undefined,
    log: createLogger('silent'),
    attemptMs: 2000,
    clock,
  });
  return { clock, device, info, peer };
}

test('client peer: a client that handshook through our mapping before the hub said where it is stays at the port it came from, direct', async () => {
  const { device, info, peer } = setup();
  device.receive(TOWARD_US, true);
  await peer.apply(info, true, device.reading());
  assert.equal(device.peer.endpoint?.toString(), TOWARD_US, "the hub's port (the client's mapping toward the hub) would not reach it");
  assert.equal(peer.show(), 'direct');
});

test('client peer: a handshake from an address the client has left is no proof: the hub-reported endpoint is tried', async () => {
  const { device, info, peer } = setup();
  device.receive('198.51.100.7:40002', true);
  await peer.apply(info, true, device.reading());
  assert.equal(device.peer.endpoint?.toString(), TOWARD_HUB);
  assert.equal(peer.show(), 'trying');
});

test("client peer: a failed attempt notices the client's first packets at once, not at its next retry", async () => {
  const { clock, device, info, peer } = setup();
  await peer.apply(info, true, device.reading());
  assert.equal(peer.show(), 'trying');
  await clock.advance(2100);
  peer.tick(device.reading(), clock.now());
  assert.equal(peer.show(), 'impossible');
  // The user regenerated the config with our mapped endpoint; its keepalive comes through the mapping.
  await clock.advance(1000);
  device.receive(TOWARD_US, false);
  peer.tick(device.reading(), clock.now());
  assert.equal(peer.show(), 'direct');
  // And the retry that was due is gone: it would reset the path to trying.
  await clock.advance(60_000);
  assert.equal(peer.show(), 'direct');
  assert.equal(clock.timers, 0);
});

test('client peer: with nothing from the client, the attempt fails and is retried with backoff', async () => {
  const { clock, device, info, peer } = setup();
  await peer.apply(info, true, device.reading());
  await clock.advance(2100);
  peer.tick(device.reading(), clock.now());
  assert.equal(peer.show(), 'impossible');
  assert.match(peer.report(device.reading()).reason ?? '', /symmetric.*phone\.proxied\.conf/);
  await clock.advance(5000);
  assert.equal(peer.show(), 'trying', 'retried after 5 s');
  await clock.advance(2100);
  peer.tick(device.reading(), clock.now());
  assert.equal(peer.show(), 'impossible');
  await clock.advance(9000);
  assert.equal(peer.show(), 'impossible', 'the second retry waits 10 s');
  await clock.advance(1000);
  assert.equal(peer.show(), 'trying');
  peer.stop();
});
