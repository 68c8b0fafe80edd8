import type { Logger } from '../core/log.js';
import { Endpoint, HostPort } from '../core/net/endpoint.js';
import type { StreamTarget } from '../core/stream/messages.js';
import { StreamShim, type ShimPhase } from './stream-shim.js';

/**
 * This node's stream sides on relays on their own machines (`relay run`, issue 12): one shim per
 * relay stream side (its address and port, and the pin the hub gave), carrying the channels of
 * every allocation the hub put on that relay, each opened with its ticket. A shim starts with the
 * first allocation and stops with the last.
 */

/** Where the hub said to open a side of an allocation, with what (protocol.ts, the relay path's `stream`). */
export interface RemoteStream {
  readonly endpoint: Endpoint;
  readonly pin: string;
  /** A secret: handed to the shim, never logged. */
  readonly ticket: string;
}

/** What this needs of a shim (StreamShim's surface), so tests can give a fake. */
export interface TicketShimLike {
  readonly state: ShimPhase;
  start(): void;
  stop(): void;
  open(to: StreamTarget, ticket?: string): Promise<Endpoint>;
  close(to: StreamTarget): void;
  whenUp(timeoutMs: number): Promise<boolean>;
}

export interface RelayStreamsOptions {
  /** Where the local WireGuard listens (the shims take datagrams from it only). */
  wireguard(): Promise<Endpoint>;
  log: Logger;
  makeShim?(spec: { relay: HostPort; pin: string; wireguard: Endpoint; log: Logger }): TicketShimLike;
  /** How long a new allocation waits for its relay's stream to come up (the peer's first initiation would be lost). */
  upWaitMs?: number;
}

interface Entry {
  readonly key: string;
  readonly endpoint: Endpoint;
  readonly shim: TicketShimLike;
  readonly allocations: Set<string>;
}

export class RelayStreams {
  private readonly byRelay = new Map<string, Entry>();
  private readonly byAllocation = new Map<string, Entry>();

  constructor(private readonly opts: RelayStreamsOptions) {}

  async open(relayId: string, remote: RemoteStream): Promise<Endpoint> {
    const key = `${remote.endpoint.toString()} ${remote.pin}`;
    const held = this.byAllocation.get(relayId);
    // One allocation lives on one relay: a command naming another is a new grant, the old channel goes.
    if (held && held.key !== key) this.close(relayId);
    let e = this.byRelay.get(key);
    if (!e) {
      const wireguard = await this.opts.wireguard();
      e = this.byRelay.get(key);
      if (!e) {
        const make = this.opts.makeShim ?? defaultShim;
        const shim = make({ relay: HostPort.parse(remote.endpoint.toString()), pin: remote.pin, wireguard, log: this.opts.log });
        e = { key, endpoint: remote.endpoint, shim, allocations: new Set() };
        this.byRelay.set(key, e);
        shim.start();
      }
    }
    e.allocations.add(relayId);
    this.byAllocation.set(relayId, e);
    const local = await e.shim.open({ kind: 'allocation', id: relayId }, remote.ticket);
    await e.shim.whenUp(this.opts.upWaitMs ?? 3000);
    return local;
  }

  has(relayId: string): boolean {
    return this.byAllocation.has(relayId);
  }

  close(relayId: string): void {
    const e = this.byAllocation.get(relayId);
    if (!e) return;
    this.byAllocation.delete(relayId);
    e.allocations.delete(relayId);
    e.shim.close({ kind: 'allocation', id: relayId });
    if (e.allocations.size > 0) return;
    e.shim.stop();
    this.byRelay.delete(e.key);
  }

  /** For status: each relay stream, its state, and how many allocations ride it. */
  status(): { relay: string; stream: ShimPhase['kind']; allocations: number }[] {
    return [...this.byRelay.values()].map((e) => ({ relay: e.endpoint.toString(), stream: e.shim.state.kind, allocations: e.allocations.size }));
  }

  stop(): void {
    for (const e of this.byRelay.values()) e.shim.stop();
    this.byRelay.clear();
    this.byAllocation.clear();
  }
}

function defaultShim(spec: { relay: HostPort; pin: string; wireguard: Endpoint; log: Logger }): TicketShimLike {
  return new StreamShim({ relay: spec.relay, trust: { pin: spec.pin }, transport: 'tls', credentials: { kind: 'tickets' }, wireguard: spec.wireguard, log: spec.log });
}
