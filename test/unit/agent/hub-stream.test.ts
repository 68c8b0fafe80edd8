import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HubStream, type ShimLike, type ShimSpec } from '../../../src/agent/hub-stream.js';
import type { ShimPhase } from '../../../src/agent/stream-shim.js';
import { IpAddress } from '../../../src/core/net/address.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import type { StreamTarget } from '../../../src/core/stream/messages.js';
import type { WireGuardDevice } from '../../../src/core/wireguard/device.js';
import type { DeviceState, DeviceUpdate, PeerState } from '../../../src/core/wireguard/uapi.js';
import { FakeClock } from '../fake-clock.js';
import { silent } from '../stream-fixtures.js';

const HUB_KEY = Buffer.alloc(32, 7).toString('base64');
const OWN_KEY = Buffer.alloc(32, 9).toString('base64');
const HUB_UDP = Endpoint.parse('203.0.113.1:51820');

class FakeShim implements ShimLike {
  state: ShimPhase = { kind: 'idle' };
  opened: string[] = [];
  closed: string[] = [];
  private port = 40000;
  constructor(
    readonly spec: ShimSpec,
    private readonly upAtStart = true,
  ) {}
  start(): void {
    this.state = this.upAtStart ? { kind: 'up', since: 0 } : { kind: 'connecting', attempt: 0 };
  }
  /** The stream comes up (the relay's welcome). */
  up(): void {
    this.state = { kind: 'up', since: 0 };
    this.spec.onPhase(this.state);
  }
  stop(): void {
    this.state = { kind: 'stopped' };
  }
  async open(to: StreamTarget): Promise<Endpoint> {
    this.opened.push(to.kind === 'hub' ? 'hub' : to.id);
    return Endpoint.of(IpAddress.parse('127.0.0.1'), this.port++);
  }
  close(to: StreamTarget): void {
    this.closed.push(to.kind === 'hub' ? 'hub' : to.id);
  }
}

/** A device whose one peer is the hub; updates are recorded and the endpoint they set is kept. */
class HubDevice implements WireGuardDevice {
  readonly ifname = 'fake0';
  readonly kind = 'uapi';
  sets: DeviceUpdate[] = [];
  hub: PeerState = { publicKey: HUB_KEY, endpoint: HUB_UDP, allowedIps: ['10.99.0.1/32'], persistentKeepalive: 1, lastHandshakeMs: 0, rxBytes: 0, txBytes: 0 };
  async get(): Promise<DeviceState> {
    return { publicKey: OWN_KEY, listenPort: 51821, fwmark: 0, peers: [this.hub] };
  }
  async set(update: DeviceUpdate): Promise<void> {
    this.sets.push(update);
    for (const p of update.peers ?? []) if (p.endpoint) this.hub = { ...this.hub, endpoint: p.endpoint };
  }
  /** The endpoints the hub peer was re-added at, in order. */
  readds(): string[] {
    return this.sets.flatMap((u) => (u.peers ?? []).filter((p) => p.endpoint && p.persistentKeepalive === 0).map((p) => p.endpoint!.toString()));
  }
}

function setup(probeAnswers: () => boolean, upAtStart = true) {
  const clock = new FakeClock();
  const device = new HubDevice();
  const shims: FakeShim[] = [];
  const queue: (() => Promise<void>)[] = [];
  const hs = new HubStream({
    stream: { port: 443, pin: `sha256/${Buffer.alloc(32).toString('base64')}` },
    hubEndpoints: ['203.0.113.1:51820'],
    token: 't'.repeat(40),
    device,
    log: silent,
    clock,
    enqueue: (fn) => queue.push(fn),
    makeShim: (spec) => {
      const s = new FakeShim(spec, upAtStart);
      shims.push(s);
      return s;
    },
    probe: async () => probeAnswers(),
  });
  /** One agent tick a second for `ms`, running what the probes queued. */
  const tick = async (ms: number) => {
    for (let t = 0; t < ms; t += 1000) {
      await clock.advance(1000);
      while (queue.length) await queue.shift()!();
      await hs.check(device.hub, clock.now());
    }
  };
  /** A handshake completes 20 ms from now. */
  const handshake = async () => {
    await clock.advance(20);
    device.hub = { ...device.hub, lastHandshakeMs: clock.now(), rxBytes: device.hub.rxBytes + 92 };
  };
  return { clock, device, shims, hs, tick, handshake };
}

describe('hub stream (the transport choice carried out)', () => {
  test('UDP blocked: after the deadline the hub peer is re-added at the shim, whose stream goes to the hub host on the stream port as this node', async () => {
    const r = setup(() => false);
    await r.tick(5000);
    assert.equal(r.shims.length, 1);
    const spec = r.shims[0].spec;
    assert.equal(spec.relay.toString(), '203.0.113.1:443');
    assert.equal(spec.credentials.publicKey, OWN_KEY);
    assert.equal(spec.wireguard.toString(), '127.0.0.1:51821');
    assert.deepEqual(r.shims[0].opened, ['hub']);
    // First a fresh initiation over UDP at start (wg-quick's may have been lost), then the stream.
    assert.deepEqual(r.device.readds(), ['203.0.113.1:51820', '127.0.0.1:40000']);
    assert.ok(r.device.sets.some((u) => u.peers?.some((p) => p.publicKey === HUB_KEY && p.remove)));
    const st = r.hs.status(r.clock.now());
    assert.equal(st.transport, 'tcp/tls');
    assert.equal(st.relay, '203.0.113.1:443');
    assert.match(st.reason, /no UDP handshake/);
  });

  test('a shim that is not up yet: the hub peer is re-added when it comes up, so its first initiation is not dropped', async () => {
    const r = setup(() => false, false);
    await r.tick(4000);
    assert.deepEqual(r.shims[0].opened, ['hub']);
    assert.deepEqual(r.device.readds(), ['203.0.113.1:51820'], 'not at the shim while the stream is connecting');
    r.shims[0].up();
    await r.tick(1000);
    assert.deepEqual(r.device.readds(), ['203.0.113.1:51820', '127.0.0.1:40000']);
  });

  test('UDP that works never starts a shim', async () => {
    const r = setup(() => true);
    await r.clock.advance(100);
    await r.handshake();
    await r.tick(10_000);
    assert.equal(r.shims.length, 0);
    assert.equal(r.hs.status().transport, 'udp');
  });

  test('a probe answered: the hub peer goes back to its UDP endpoint, and once it handshakes there the shim stops', async () => {
    let udp = false;
    const r = setup(() => udp);
    await r.tick(4000);
    await r.handshake();
    await r.tick(3000);
    assert.ok(['stream', 'probing-udp'].includes(r.hs.transport?.kind ?? ''));
    udp = true;
    // The next probe comes within the probe interval at most (PROBE_MAX_MS).
    for (let i = 0; i < 16 && r.hs.transport?.kind !== 'returning'; i++) await r.tick(1000);
    assert.equal(r.hs.transport?.kind as string, 'returning');
    assert.equal(r.device.readds().at(-1), HUB_UDP.toString());
    assert.deepEqual(r.shims[0].closed, ['hub']);
    await r.handshake();
    await r.tick(1000);
    assert.equal(r.hs.transport?.kind as string, 'udp');
    assert.equal(r.shims[0].state.kind, 'stopped');
  });

  test('a tcp-relay allocation opens a channel on the shim, and keeps the shim running after the hub peer is back on UDP until it is closed', async () => {
    let udp = false;
    const r = setup(() => udp);
    await r.tick(4000);
    await r.handshake();
    const local = await r.hs.openAllocation('00112233aabbccdd');
    assert.equal(local.address.toString(), '127.0.0.1');
    assert.deepEqual(r.shims[0].opened, ['hub', '00112233aabbccdd']);
    udp = true;
    for (let i = 0; i < 16 && r.hs.transport?.kind !== 'returning'; i++) await r.tick(1000);
    await r.handshake();
    await r.tick(1000);
    assert.equal(r.hs.transport?.kind, 'udp');
    assert.notEqual(r.shims[0].state.kind, 'stopped');
    r.hs.closeAllocation('00112233aabbccdd');
    assert.equal(r.shims[0].state.kind, 'stopped');
  });

  test('without a stream block the hub peer stays on UDP, and a tcp-relay path is refused with what to do', async () => {
    const clock = new FakeClock();
    const device = new HubDevice();
    const hs = new HubStream({ stream: undefined, hubEndpoints: ['203.0.113.1:51820'], token: 't'.repeat(40), device, log: silent, clock, enqueue: () => undefined });
    for (let i = 0; i < 10; i++) {
      await clock.advance(1000);
      await hs.check(device.hub, clock.now());
    }
    assert.deepEqual(device.sets, []);
    await assert.rejects(hs.openAllocation('00112233aabbccdd'), /no "stream" block/);
  });
});
