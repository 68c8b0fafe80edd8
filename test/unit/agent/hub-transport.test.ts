import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { initialTransport, NETWORK_PROBE_MS, onStream, PROBE_MAX_MS, PROBE_MIN_MS, transportStep, UDP_DEADLINE_MS, UDP_SILENT_MS, type TransportEvent, type TransportState } from '../../../src/agent/hub-transport.js';
import { FakeClock } from '../fake-clock.js';

/** Drives the machine on a fake clock, with the hub peer's handshake time and received bytes as a device would report them. */
class Run {
  readonly clock = new FakeClock();
  s: TransportState;
  effects: string[] = [];
  handshakeMs = 0;
  rx = 0;
  constructor() {
    this.s = initialTransport(this.clock.now(), this.rx);
  }
  feed(e: TransportEvent): void {
    const step = transportStep(this.s, e);
    this.s = step.state;
    this.effects.push(...step.effects.map((x) => x.type));
  }
  /** Readings once a second, as the agent's slow tick does, for `ms`. */
  async readFor(ms: number, every = 1000): Promise<void> {
    for (let t = 0; t < ms; t += every) {
      await this.clock.advance(every);
      this.feed({ type: 'observe', now: this.clock.now(), handshakeMs: this.handshakeMs, rx: this.rx });
    }
  }
  state(): TransportState {
    return this.s;
  }
  kind(): string {
    return this.s.kind;
  }
  reason(): string {
    return this.s.reason;
  }
  /** A handshake completes 20 ms from now (a round trip). */
  async handshake(): Promise<void> {
    await this.clock.advance(20);
    this.handshakeMs = this.clock.now();
    this.rx += 92;
  }
}

describe('hub transport', () => {
  test('a network that passes UDP stays on UDP: a handshake within the deadline proves it', async () => {
    const r = new Run();
    await r.clock.advance(200);
    await r.handshake();
    await r.readFor(10_000);
    assert.equal(r.kind(), 'udp');
    assert.ok(r.s.kind === 'udp' && r.s.proven);
    assert.deepEqual(r.effects, []);
  });

  test('no UDP handshake within the deadline: the hub peer moves to the stream, which a handshake over it confirms', async () => {
    const r = new Run();
    await r.readFor(UDP_DEADLINE_MS - 1000);
    assert.equal(r.kind(), 'udp');
    await r.readFor(1000);
    assert.equal(r.kind(), 'trying-stream');
    assert.deepEqual(r.effects, ['use-stream']);
    assert.match(r.reason(), /no UDP handshake with the hub within 2 s/);
    assert.ok(onStream(r.s));
    await r.handshake();
    await r.readFor(500, 500);
    assert.equal(r.kind(), 'stream');
  });

  test('on the stream it probes UDP with backoff, 1 s doubling to the cap, and stays while no probe is answered', async () => {
    const r = new Run();
    await r.readFor(UDP_DEADLINE_MS);
    await r.handshake();
    const gaps: number[] = [];
    let last = r.clock.now();
    for (let i = 0; i < 8; i++) {
      while (r.s.kind !== 'probing-udp') await r.readFor(100, 100);
      gaps.push(r.clock.now() - last);
      r.feed({ type: 'probed', now: r.clock.now(), answered: false });
      last = r.clock.now();
      assert.equal(r.kind(), 'stream');
    }
    // The first probe is due PROBE_MIN_MS after the switch; then each waits the interval before it, doubled.
    assert.deepEqual(gaps.slice(1), [PROBE_MIN_MS, 2000, 4000, 8000, PROBE_MAX_MS, PROBE_MAX_MS, PROBE_MAX_MS]);
    assert.equal(r.effects.filter((e) => e === 'probe').length, 8);
  });

  test('a probe answered moves the hub peer back to UDP, and a handshake there stops the stream (a laptop leaving the hotel)', async () => {
    const r = new Run();
    await r.readFor(UDP_DEADLINE_MS);
    await r.handshake();
    while (r.s.kind !== 'probing-udp') await r.readFor(100, 100);
    r.feed({ type: 'probed', now: r.clock.now(), answered: true });
    assert.equal(r.kind(), 'returning');
    assert.equal(r.effects.at(-1), 'use-udp');
    assert.ok(!onStream(r.s));
    await r.clock.advance(50);
    await r.handshake();
    await r.readFor(100, 100);
    assert.equal(r.kind(), 'udp');
    assert.equal(r.effects.at(-1), 'stop-stream');
  });

  test('STUN passes but WireGuard does not (UDP only to some ports): back on the stream after the deadline, probing more slowly', async () => {
    const r = new Run();
    await r.readFor(UDP_DEADLINE_MS);
    await r.handshake();
    while (r.s.kind !== 'probing-udp') await r.readFor(100, 100);
    r.feed({ type: 'probed', now: r.clock.now(), answered: true });
    await r.readFor(UDP_DEADLINE_MS);
    assert.equal(r.kind(), 'trying-stream');
    assert.equal(r.effects.at(-1), 'use-stream');
    const s = r.state();
    assert.ok(s.kind === 'trying-stream' && s.probeMs === 2 * PROBE_MIN_MS);
  });

  test('a network change while on the stream probes at once', async () => {
    const r = new Run();
    await r.readFor(UDP_DEADLINE_MS);
    await r.handshake();
    for (let i = 0; i < 4; i++) {
      while (r.s.kind !== 'probing-udp') await r.readFor(100, 100);
      r.feed({ type: 'probed', now: r.clock.now(), answered: false });
    }
    r.feed({ type: 'network-changed', now: r.clock.now(), rx: r.rx });
    await r.readFor(100, 100);
    assert.equal(r.kind(), 'probing-udp');
    // The new network is often not ready for the first probe: the next ones come soon.
    const t = r.clock.now();
    r.feed({ type: 'probed', now: t, answered: false });
    while (r.s.kind !== 'probing-udp') await r.readFor(50, 50);
    assert.equal(r.clock.now() - t, NETWORK_PROBE_MS);
  });

  test('on UDP, a network change asks for new proof, and silence from the hub after it moves to the stream (arriving at the hotel)', async () => {
    const r = new Run();
    await r.handshake();
    await r.readFor(2000);
    assert.ok(r.s.kind === 'udp' && r.s.proven);
    r.feed({ type: 'network-changed', now: r.clock.now(), rx: r.rx });
    assert.ok(r.s.kind === 'udp' && !r.s.proven);
    await r.readFor(UDP_DEADLINE_MS);
    assert.equal(r.kind(), 'trying-stream');
  });

  test('a proven UDP hub peer that hears nothing for UDP_SILENT_MS moves to the stream; traffic from the hub keeps it', async () => {
    const r = new Run();
    await r.handshake();
    for (let i = 0; i < 40; i++) {
      r.rx += 100;
      await r.readFor(1000);
    }
    assert.equal(r.kind(), 'udp');
    await r.readFor(UDP_SILENT_MS - 1000);
    assert.equal(r.kind(), 'udp');
    await r.readFor(1000);
    assert.equal(r.kind(), 'trying-stream');
    assert.match(r.reason(), /nothing from the hub over UDP/);
  });

  test('a late probe answer after the machine moved on changes nothing', () => {
    const r = new Run();
    const before = r.s;
    r.feed({ type: 'probed', now: r.clock.now(), answered: true });
    assert.equal(r.s, before);
    assert.deepEqual(r.effects, []);
  });
});
