import { randomBytes } from 'node:crypto';
import { IpAddress } from '../core/net/address.js';
import { Endpoint } from '../core/net/endpoint.js';
import type { RelayStats, RelayStreamStats } from '../core/relay-protocol.js';
import { newTicket } from '../core/stream/ticket.js';
import type { RelaySideSpec } from '../relay/relay.js';

/**
 * The relays the hub can hand pairs to: the one inside the hub (by default) and any number of
 * `wgp2p relay run` processes that registered over their tunnels. A pair goes to the least loaded
 * relay that has an address of each side's family (an IPv6-only node and an IPv4-only node need a
 * relay with both, and get one side on each); an allocation id is random, so an agent can tell a
 * new allocation (a restarted hub or relay) from the one it uses.
 *
 * A side allocated at a loopback node IP rides a TLS stream (candidates/tcp-relay.ts): only a
 * relay with a stream side can carry it. The hub's own relay is reached over the hub's stream
 * side (nodes authenticate with their tokens); a relay on its own machine over its own, where
 * the node presents a ticket the pool draws here for that side (core/stream/ticket.ts).
 */

/**
 * How nodes on a TLS stream reach a relay's allocations: over the hub's own stream side (the
 * built-in relay), or the relay's own (its TCP port on its addresses, and its TLS key's pin).
 */
export type RelayStreamReach = { readonly kind: 'hub' } | { readonly kind: 'own'; readonly port: number; readonly pin: string };

/** What a stream side's agent needs to open its side of an allocation on a relay's own stream side. */
export interface StreamGrant {
  /** The relay's stream side: its address of the side's family, and its TCP port. */
  endpoint: Endpoint;
  pin: string;
  /** A secret: in the agent's path command only, never logged. */
  ticket: string;
}

/** Tickets for the stream sides of one allocation, by side. */
export interface SideTickets {
  a?: string;
  b?: string;
}

/** The name and registration key of the hub's own relay; no relay node may be called this. */
export const BUILTIN_RELAY = 'builtin';

export interface RelayBackend {
  /** What `status` and the logs call it: "builtin" or the relay node's name. */
  readonly name: string;
  /**
   * Which relay this is, whatever its name: "builtin", or the relay node's public key. A newer
   * registration of the same relay (it reconnected) takes the place of the older one.
   */
  readonly identity: string;
  /** This registration (one connection of the relay): what the pool's entries are keyed by. */
  readonly key: string;
  /** Where nodes send to: one or two addresses, at most one per family. */
  readonly addresses: readonly IpAddress[];
  readonly allocationCount: number;
  /** Its stream side, or null: it carries no pair with a side on a stream. */
  readonly stream: RelayStreamReach | null;
  /** `tickets`: for a relay with a stream side of its own, the stream sides' tickets (the relay gets their digests). */
  allocate(id: string, a: RelaySideSpec, b: RelaySideSpec, tickets?: SideTickets): Promise<{ portA: number; portB: number }>;
  updateIp(id: string, publicKey: string, ip: IpAddress): void;
  release(id: string): void;
  has(id: string): boolean;
  stats(): Promise<RelayStats[]>;
  /** A newer registration of the same relay took this one's place: stop acting on what it says. */
  retire?(): void;
  /** Its own stream side's counters, as last reported (relays on their own machines). */
  readonly streamStats?: RelayStreamStats | null;
}

export interface Allocation {
  relayId: string;
  /** The relay's name (for status and logs). */
  relay: string;
  /** The registration it was made on (RelayBackend.key). */
  backend: string;
  a: string;
  b: string;
  /**
   * Where a sends to reach b, and b to reach a: the relay's endpoint on each node's own family
   * (`a.b.c.d:p` or `[v6]:p`), so the two differ in address as well as port for a bridged pair.
   */
  forA: Endpoint;
  forB: Endpoint;
  /** Sides that ride the relay's own stream side: where, and their tickets. */
  streamA?: StreamGrant;
  streamB?: StreamGrant;
}

/** An allocation, or why no relay of the pool could take the pair (one clause per relay tried). */
export type AllocateResult = { allocation: Allocation; reason?: undefined } | { allocation: undefined; reason: string };

export class RelayPool {
  private backends = new Map<string, RelayBackend>();
  private allocations = new Map<string, Allocation>();

  constructor(private readonly onGone: (relayId: string) => void) {}

  /**
   * Registers a relay. A relay node called "builtin" is refused (it would be taken for the hub's
   * own); an earlier registration of the same relay is retired and its pairs move.
   */
  add(b: RelayBackend): void {
    if ((b.name === BUILTIN_RELAY) !== (b.identity === BUILTIN_RELAY)) {
      throw new Error(`a relay node may not be called "${BUILTIN_RELAY}": that is the hub's own relay; remove the node and add it again under another name`);
    }
    for (const old of [...this.backends.values()]) {
      if (old.identity !== b.identity || old === b) continue;
      this.remove(old);
      old.retire?.();
    }
    this.backends.set(b.key, b);
  }

  /**
   * A relay's registration went away: every allocation it held is gone, and the pairs on it must
   * move. Only that registration: a late close of a connection the relay has since replaced
   * changes nothing for the one that replaced it.
   */
  remove(b: RelayBackend): void {
    if (this.backends.get(b.key) !== b) return;
    this.backends.delete(b.key);
    for (const a of [...this.allocations.values()]) {
      if (a.backend !== b.key) continue;
      this.allocations.delete(a.relayId);
      this.onGone(a.relayId);
    }
  }

  /** The backend released an allocation by itself (idle expiry, or it refused a change). */
  released(relayId: string): void {
    if (this.allocations.delete(relayId)) this.onGone(relayId);
  }

  get size(): number {
    return this.backends.size;
  }

  /** An allocation, or undefined when no relay can take the pair (tryAllocate() says why). */
  async allocate(a: RelaySideSpec, b: RelaySideSpec): Promise<Allocation | undefined> {
    return (await this.tryAllocate(a, b)).allocation;
  }

  /**
   * Tries the relays from the least loaded. A relay without an address of a side's family could
   * never reach that node: it is passed over before anything is allocated on it.
   */
  async tryAllocate(a: RelaySideSpec, b: RelaySideSpec): Promise<AllocateResult> {
    const ipA = nodeIp(a);
    const ipB = nodeIp(b);
    if (!ipA || !ipB) return { allocation: undefined, reason: `side ${ipA ? 'B' : 'A'}'s node IP "${String((ipA ? b : a).ip)}" is not an IP address` };
    const pair = ipA.family === ipB.family ? `an IPv${ipA.family} pair` : `a bridged pair (A on IPv${ipA.family}, B on IPv${ipB.family})`;
    if (this.backends.size === 0) return { allocation: undefined, reason: `no relay for ${pair}: the pool is empty (the hub runs with --no-relay and no relay registered)` };
    const refusals: string[] = [];
    const candidates = [...this.backends.values()].sort((x, y) => x.allocationCount - y.allocationCount);
    const onStreamA = ipA.scope() === 'loopback';
    const onStreamB = ipB.scope() === 'loopback';
    for (const backend of candidates) {
      const relayA = backend.addresses.find((x) => x.family === ipA.family);
      const relayB = backend.addresses.find((x) => x.family === ipB.family);
      if (!relayA || !relayB) {
        const missing = [...new Set([relayA ? [] : [ipA.family], relayB ? [] : [ipB.family]].flat())];
        refusals.push(`${backend.name} has no IPv${missing.join('/IPv')} address (it has ${backend.addresses.map(String).join(', ')})`);
        continue;
      }
      const stream = backend.stream;
      if ((onStreamA || onStreamB) && !stream) {
        refusals.push(`${backend.name} has no stream side (it runs with --no-tcp, or is of an older release), and ${onStreamA && onStreamB ? 'both sides ride' : 'a side rides'} a TLS stream`);
        continue;
      }
      const relayId = randomBytes(8).toString('hex');
      const own = stream?.kind === 'own' ? stream : undefined;
      const tickets: SideTickets = own ? { ...(onStreamA ? { a: newTicket() } : {}), ...(onStreamB ? { b: newTicket() } : {}) } : {};
      const grant = (relayAddress: IpAddress, ticket: string | undefined): StreamGrant | undefined => (own && ticket ? { endpoint: Endpoint.of(relayAddress, own.port), pin: own.pin, ticket } : undefined);
      try {
        const ports = await backend.allocate(relayId, { publicKey: a.publicKey, ip: ipA }, { publicKey: b.publicKey, ip: ipB }, own ? tickets : undefined);
        const streamA = grant(relayA, tickets.a);
        const streamB = grant(relayB, tickets.b);
        const alloc: Allocation = { relayId, relay: backend.name, backend: backend.key, a: a.publicKey, b: b.publicKey, forA: Endpoint.of(relayA, ports.portA), forB: Endpoint.of(relayB, ports.portB), ...(streamA ? { streamA } : {}), ...(streamB ? { streamB } : {}) };
        this.allocations.set(relayId, alloc);
        return { allocation: alloc };
      } catch (err) {
        // Full or gone: the next relay may have room.
        refusals.push(`${backend.name}: ${(err as Error).message}`);
      }
    }
    return { allocation: undefined, reason: `no relay could take ${pair}: ${refusals.join('; ')}` };
  }

  alive(relayId: string): boolean {
    const a = this.allocations.get(relayId);
    return a !== undefined && this.backends.get(a.backend)?.has(relayId) === true;
  }

  /**
   * A node's public IP changed: its allocations accept the new one (the port is learned again
   * from a handshake). One whose side was on the other family is released instead, and the pair
   * moves (onGone): the node was told a relay endpoint of the family it no longer has.
   */
  updateIp(publicKey: string, ip: string | IpAddress): void {
    const next = (typeof ip === 'string' ? IpAddress.tryParse(ip) : ip)?.unmapped();
    if (!next) return;
    for (const a of [...this.allocations.values()]) {
      if (a.a !== publicKey && a.b !== publicKey) continue;
      const relayEndpoint = a.a === publicKey ? a.forA : a.forB;
      if (relayEndpoint.family !== next.family) {
        this.drop(a.relayId);
        continue;
      }
      try {
        this.backends.get(a.backend)?.updateIp(a.relayId, publicKey, next);
      } catch {
        this.drop(a.relayId);
      }
    }
  }

  /** Released here (the backend too, so nothing of it stays allocated there), and the pair moves. */
  private drop(relayId: string): void {
    if (!this.allocations.has(relayId)) return;
    this.release(relayId);
    this.onGone(relayId);
  }

  release(relayId: string): void {
    const a = this.allocations.get(relayId);
    if (!a) return;
    this.allocations.delete(relayId);
    this.backends.get(a.backend)?.release(relayId);
  }

  /** `address` is every address as one text (what `status` shows); `addresses` lists them. */
  relays(): { name: string; address: string; addresses: string[]; allocations: number; stream: string | null; streamStats?: RelayStreamStats }[] {
    return [...this.backends.values()].map((b) => ({ name: b.name, address: b.addresses.map(String).join(', '), addresses: b.addresses.map(String), allocations: b.allocationCount, stream: streamText(b.stream), ...(b.streamStats ? { streamStats: b.streamStats } : {}) }));
  }

  async stats(): Promise<(RelayStats & { relay: string })[]> {
    const out: (RelayStats & { relay: string })[] = [];
    for (const b of this.backends.values()) for (const s of await b.stats().catch(() => [])) out.push({ ...s, relay: b.name });
    return out;
  }
}

/** What `status` says of a relay's stream side. */
function streamText(s: RelayStreamReach | null): string | null {
  if (!s) return null;
  return s.kind === 'hub' ? "the hub's stream side" : `TCP ${s.port}, TLS key ${s.pin}`;
}

function nodeIp(s: RelaySideSpec): IpAddress | undefined {
  return (typeof s.ip === 'string' ? IpAddress.tryParse(s.ip) : s.ip)?.unmapped();
}
