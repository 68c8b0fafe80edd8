import { realClock, type Cancel, type Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { IpAddress } from '../core/net/address.js';
import { Endpoint, HostPort } from '../core/net/endpoint.js';
import type { HubTransportJson } from '../core/status.js';
import type { StreamConfig } from '../core/stream/config.js';
import type { StreamTarget } from '../core/stream/messages.js';
import { StunSocket } from '../core/stun/client.js';
import type { WireGuardDevice } from '../core/wireguard/device.js';
import type { PeerState } from '../core/wireguard/uapi.js';
import { HUB_KEEPALIVE_S } from './hub-keepalive.js';
import { initialTransport, onStream, transportBusy, transportStep, type TransportEffect, type TransportEvent, type TransportState } from './hub-transport.js';
import { RelayStreams, type RemoteStream, type TicketShimLike } from './relay-streams.js';
import { StreamShim, type ShimPhase } from './stream-shim.js';

/**
 * Carries out hub-transport.ts: the agent's hub peer on UDP or on the hub's TLS stream, and the
 * stream channels of relay allocations the hub made for this node's side on the stream (the
 * `tcp-relay` candidate, core/candidates/tcp-relay.ts). Driven by the agent's device readings
 * (check), its network watch (networkChanged) and the answers to its STUN probes.
 */

/** The hub's STUN responder (hub/stun-responder.ts, `hub run --stun-port`). */
export const HUB_STUN_PORT = 3478;

/** What the controller needs of a shim: StreamShim's surface, so tests can give a fake. */
export interface ShimLike {
  readonly state: ShimPhase;
  start(): void;
  stop(): void;
  open(to: StreamTarget): Promise<Endpoint>;
  close(to: StreamTarget): void;
}

export interface ShimSpec {
  relay: HostPort;
  pin: string;
  credentials: { publicKey: string; token: string };
  wireguard: Endpoint;
  log: Logger;
  onPhase(p: ShimPhase): void;
}

export interface HubStreamOptions {
  /** The agent config's stream block; without it the hub peer stays on UDP whatever happens. */
  stream: StreamConfig | undefined;
  /** The hub's endpoints from the agent config (host:port, the config's own first). */
  hubEndpoints: readonly string[];
  token: string;
  device: WireGuardDevice;
  log: Logger;
  clock?: Clock;
  /** Runs device work in the agent's queue (probe answers arrive outside it). */
  enqueue(fn: () => Promise<void>): void;
  /** The transport or its reason changed (status, and a hello so the hub hears at once). */
  changed?(s: TransportState): void;
  makeShim?(spec: ShimSpec): ShimLike;
  /** Shims to relays on their own machines (relay-streams.ts), for tests. */
  makeTicketShim?(spec: { relay: HostPort; pin: string; wireguard: Endpoint; log: Logger }): TicketShimLike;
  /** Whether the hub's STUN responder answers at `to` (default: a Binding request, 3 tries 250 ms apart). */
  probe?(to: Endpoint): Promise<boolean>;
}

export class HubStream {
  private state: TransportState | undefined;
  private shim: ShimLike | undefined;
  private readonly clock: Clock;
  /** The hub peer's key: known from the first reading that names it. */
  private hubKey: string | undefined;
  /** Where the hub peer reaches the hub over UDP: as wg-quick set it, else the config's first endpoint. */
  private udpEndpoint: Endpoint | undefined;
  private readonly allocations = new Set<string>();
  private probing: Cancel | undefined;
  /**
   * The shim's hub port, while the hub peer waits for the stream to come up: WireGuard's
   * initiation on re-adding would be dropped by a shim that is not up yet (and the next one
   * comes 5 s later), so the peer is re-added when it is.
   */
  private pendingHub: Endpoint | undefined;
  private stopped = false;
  /** Sides on relays with a stream side of their own, which the hub's token does not open (tickets). */
  private readonly remote: RelayStreams;

  constructor(private readonly opts: HubStreamOptions) {
    this.clock = opts.clock ?? realClock;
    this.remote = new RelayStreams({
      wireguard: async () => Endpoint.of(IpAddress.parse('127.0.0.1'), (await opts.device.get()).listenPort),
      log: opts.log,
      makeShim: opts.makeTicketShim,
    });
    const first = opts.hubEndpoints[0];
    this.udpEndpoint = first ? HostPort.parse(first).endpoint : undefined;
  }

  /** The hub peer's key, once a reading named it (before the hub's snapshot says it). */
  get hubPublicKey(): string | undefined {
    return this.hubKey;
  }

  get transport(): TransportState | undefined {
    return this.state;
  }

  /** The device should be read often (a deadline or proof is awaited). */
  get busy(): boolean {
    return this.state !== undefined && this.opts.stream !== undefined && transportBusy(this.state);
  }

  /** With a reading of the hub peer at each tick. */
  async check(hub: PeerState | undefined, now = this.clock.now()): Promise<void> {
    if (this.stopped || !hub) return;
    this.hubKey = hub.publicKey;
    if (hub.endpoint && hub.endpoint.address.scope() !== 'loopback') this.udpEndpoint = hub.endpoint;
    if (!this.state) {
      this.state = initialTransport(now, hub.rxBytes, hub.endpoint?.address.scope() === 'loopback' ? 0 : hub.lastHandshakeMs);
      // A restarted agent finds the hub peer still on a shim port of its previous run: back to UDP
      // first. And without a live session, WireGuard's initiation from `wg-quick up` may have been
      // lost (measured in the lab: a hub that had not yet added the new node's peer dropped it), and
      // its retry comes only 5 s later, after the deadline: initiate now, so the deadline measures
      // this network and not that one lost packet.
      if (this.opts.stream && (hub.endpoint?.address.scope() === 'loopback' || (this.state.kind === 'udp' && !this.state.proven))) await this.readdHub(hub, this.udpEndpoint);
      this.opts.changed?.(this.state);
      return;
    }
    await this.feed({ type: 'observe', now, handshakeMs: hub.lastHandshakeMs, rx: hub.rxBytes }, hub);
  }

  async networkChanged(hub: PeerState | undefined): Promise<void> {
    if (!this.state || this.stopped) return;
    const now = this.clock.now();
    await this.feed({ type: 'network-changed', now, rx: hub?.rxBytes ?? 0 }, hub);
    // On the stream the probe is due now: send it now, not at the next tick.
    if (hub) await this.feed({ type: 'observe', now, handshakeMs: hub.lastHandshakeMs, rx: hub.rxBytes }, hub);
  }

  /**
   * A relay path of the `tcp-relay` kind: this node's side of allocation `relayId` is on the
   * stream: the hub's, or with `remote` the stream side of a relay on its own machine, opened
   * with the hub's ticket.
   */
  async openAllocation(relayId: string, remote?: RemoteStream): Promise<Endpoint> {
    if (this.stopped) throw new Error('the agent is stopping');
    if (remote) return this.remote.open(relayId, remote);
    const shim = await this.ensureShim();
    if (!shim) throw new Error('the hub put this node on a relay over the stream, and the agent config has no "stream" block (get a fresh agent config from the hub)');
    this.allocations.add(relayId);
    return shim.open({ kind: 'allocation', id: relayId });
  }

  closeAllocation(relayId: string): void {
    this.remote.close(relayId);
    if (!this.allocations.delete(relayId)) return;
    this.shim?.close({ kind: 'allocation', id: relayId });
    this.maybeStopShim();
  }

  status(now = this.clock.now()): HubTransportJson {
    const s = this.state;
    const relay = this.relay()?.toString() ?? null;
    const relayStreams = this.remote.status();
    if (!this.opts.stream) return { transport: 'udp', state: s?.kind ?? 'udp', reason: 'the agent config has no stream block: UDP only', sinceMs: s ? now - s.since : null, relay: null, stream: null, nextProbeInMs: null, allocations: 0, relayStreams };
    const phase = this.shim?.state;
    return {
      transport: s && onStream(s) ? 'tcp/tls' : 'udp',
      state: s?.kind ?? 'udp',
      reason: s?.reason ?? 'starting',
      sinceMs: s ? now - s.since : null,
      relay,
      stream: phase ? describePhase(phase) : null,
      nextProbeInMs: s && (s.kind === 'stream' || s.kind === 'trying-stream') ? Math.max(0, s.probeAt - now) : null,
      probeEveryMs: s && s.kind !== 'udp' ? s.probeMs : undefined,
      allocations: this.allocations.size,
      relayStreams,
    };
  }

  stop(): void {
    this.stopped = true;
    this.probing?.();
    this.shim?.stop();
    this.shim = undefined;
    this.remote.stop();
  }

  private async feed(e: TransportEvent, hub: PeerState | undefined): Promise<void> {
    const before = this.state!;
    if (!this.opts.stream) return;
    const step = transportStep(before, e);
    this.state = step.state;
    if (notable(step.state) !== notable(before) || step.state.reason !== before.reason) {
      this.opts.log.info({ from: before.kind, to: step.state.kind, reason: step.state.reason }, 'hub transport');
      this.opts.changed?.(step.state);
    }
    for (const fx of step.effects) await this.effect(fx, hub);
  }

  private async effect(fx: TransportEffect, hub: PeerState | undefined): Promise<void> {
    switch (fx.type) {
      case 'use-stream': {
        const shim = await this.ensureShim();
        if (!shim || !hub) return;
        const local = await shim.open({ kind: 'hub' });
        if (shim.state.kind === 'up') await this.readdHub(hub, local);
        else this.pendingHub = local;
        return;
      }
      case 'use-udp':
        this.pendingHub = undefined;
        this.shim?.close({ kind: 'hub' });
        if (hub) await this.readdHub(hub, this.udpEndpoint);
        return;
      case 'stop-stream':
        this.maybeStopShim();
        return;
      case 'probe':
        this.startProbe();
        return;
    }
  }

  /**
   * Re-adds the hub peer at `endpoint`: WireGuard then initiates a handshake at once (its 0 -> K
   * keepalive on a fresh peer), instead of after REKEY_TIMEOUT on an endpoint change alone, and
   * nothing the hub still sends on the old transport, under the old session, can move the
   * endpoint back (WireGuard roams to the source of any packet it authenticates).
   */
  private async readdHub(hub: PeerState, endpoint: Endpoint | undefined): Promise<void> {
    if (!endpoint) return;
    await this.opts.device.set({ peers: [{ publicKey: hub.publicKey, remove: true }] });
    await this.opts.device.set({
      peers: [
        { publicKey: hub.publicKey, endpoint, allowedIps: hub.allowedIps, persistentKeepalive: 0 },
        { publicKey: hub.publicKey, persistentKeepalive: hub.persistentKeepalive > 0 ? hub.persistentKeepalive : HUB_KEEPALIVE_S },
      ],
    });
  }

  private async readdPending(): Promise<void> {
    const local = this.pendingHub;
    this.pendingHub = undefined;
    if (!local || !this.hubKey || !this.state || !onStream(this.state)) return;
    const hub = (await this.opts.device.get()).peers.find((p) => p.publicKey === this.hubKey);
    if (hub) await this.readdHub(hub, local);
  }

  private startProbe(): void {
    const to = this.udpEndpoint && Endpoint.of(this.udpEndpoint.address, HUB_STUN_PORT);
    const probe = this.opts.probe ?? stunAnswers;
    let cancelled = false;
    this.probing = () => (cancelled = true);
    void (to ? probe(to) : Promise.resolve(false))
      .catch(() => false)
      .then((answered) => {
        if (cancelled || this.stopped) return;
        this.probing = undefined;
        this.opts.enqueue(async () => {
          const hub = this.hubKey ? (await this.opts.device.get()).peers.find((p) => p.publicKey === this.hubKey) : undefined;
          await this.feed({ type: 'probed', now: this.clock.now(), answered }, hub);
        });
      });
  }

  private relay(): HostPort | undefined {
    const s = this.opts.stream;
    if (!s) return undefined;
    const first = this.opts.hubEndpoints[0] ? HostPort.parse(this.opts.hubEndpoints[0]) : undefined;
    const host = first?.host ?? this.udpEndpoint?.address.toString();
    if (!host) return undefined;
    const v6 = first ? first.address?.family === 6 : this.udpEndpoint?.family === 6;
    return HostPort.parse(v6 ? `[${host}]:${s.port}` : `${host}:${s.port}`);
  }

  /** The running shim, or one started now for this node (its key and WireGuard's port from the device). */
  private async ensureShim(): Promise<ShimLike | undefined> {
    if (this.shim) return this.shim;
    const s = this.opts.stream;
    const relay = this.relay();
    if (!s || !relay || this.stopped) return undefined;
    const dev = await this.opts.device.get();
    if (this.shim) return this.shim;
    if (!dev.publicKey) throw new Error(`the device does not say its public key: the stream cannot authenticate this node`);
    const make = this.opts.makeShim ?? defaultShim;
    const shim = make({
      relay,
      pin: s.pin,
      credentials: { publicKey: dev.publicKey, token: this.opts.token },
      // The shim's ports take datagrams from WireGuard's port on loopback only.
      wireguard: Endpoint.of(IpAddress.parse('127.0.0.1'), dev.listenPort),
      log: this.opts.log,
      onPhase: (p) => {
        if (p.kind === 'up' && this.pendingHub) this.opts.enqueue(() => this.readdPending());
        if (this.state) this.opts.changed?.(this.state);
      },
    });
    this.shim = shim;
    shim.start();
    return shim;
  }

  private maybeStopShim(): void {
    if (!this.shim || this.allocations.size > 0 || (this.state && onStream(this.state))) return;
    this.shim.stop();
    this.shim = undefined;
  }
}

/** A probe that finds nothing returns to where it was: not worth a log line or a hello. */
function notable(s: TransportState): string {
  return s.kind === 'probing-udp' ? (s.onStream ? 'stream' : 'trying-stream') : s.kind;
}

function defaultShim(spec: ShimSpec): ShimLike {
  return new StreamShim({ relay: spec.relay, trust: { pin: spec.pin }, transport: 'tls', credentials: spec.credentials, wireguard: spec.wireguard, log: spec.log, onPhase: spec.onPhase });
}

/** One Binding request, retransmitted: any answer means UDP passes to the hub and back. */
async function stunAnswers(to: Endpoint): Promise<boolean> {
  const s = await StunSocket.bind(to.family);
  try {
    return (await s.transact(to, StunSocket.request())) !== null;
  } finally {
    s.close();
  }
}

function describePhase(p: ShimPhase): string {
  switch (p.kind) {
    case 'backoff':
      return `down (${p.reason}; retry in ${Math.round(p.retryInMs / 100) / 10} s)`;
    case 'up':
      return 'up';
    default:
      return p.kind;
  }
}

