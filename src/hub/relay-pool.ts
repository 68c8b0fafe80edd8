import { randomBytes } from 'node:crypto';
import { IpAddress } from '../core/net/address.js';
import { Endpoint } from '../core/net/endpoint.js';
import type { RelayStats } from '../core/relay-protocol.js';
import type { RelaySideSpec } from '../relay/relay.js';

/**
 * The relays the hub can hand pairs to: the one inside the hub (by default) and any number of
 * `wgp2p relay run` processes that registered over their tunnels. A pair goes to the relay with
 * the fewest allocations; an allocation id is random, so an agent can tell a new allocation (a
 * restarted hub or relay) from the one it uses.
 */

export interface RelayBackend {
  /** Unique among the pool's relays: "builtin" or the relay node's name. */
  readonly name: string;
  /** The public address nodes send to, of either family (canonical text). */
  readonly address: string;
  readonly allocationCount: number;
  allocate(id: string, a: RelaySideSpec, b: RelaySideSpec): Promise<{ portA: number; portB: number }>;
  updateIp(id: string, publicKey: string, ip: string): void;
  release(id: string): void;
  has(id: string): boolean;
  stats(): Promise<RelayStats[]>;
}

export interface Allocation {
  relayId: string;
  relay: string;
  a: string;
  b: string;
  /** Where a sends to reach b, and b to reach a: the relay's endpoints, `a.b.c.d:p` or `[v6]:p`. */
  forA: Endpoint;
  forB: Endpoint;
}

export class RelayPool {
  private backends = new Map<string, RelayBackend>();
  private allocations = new Map<string, Allocation>();

  constructor(private readonly onGone: (relayId: string) => void) {}

  add(b: RelayBackend): void {
    this.remove(b.name);
    this.backends.set(b.name, b);
  }

  /** A relay went away: every allocation it held is gone, and the pairs on it must move. */
  remove(name: string): void {
    if (!this.backends.delete(name)) return;
    for (const a of [...this.allocations.values()]) {
      if (a.relay !== name) continue;
      this.allocations.delete(a.relayId);
      this.onGone(a.relayId);
    }
  }

  /** The backend released an allocation by itself (idle expiry). */
  released(relayId: string): void {
    if (this.allocations.delete(relayId)) this.onGone(relayId);
  }

  get size(): number {
    return this.backends.size;
  }

  async allocate(a: RelaySideSpec, b: RelaySideSpec): Promise<Allocation | undefined> {
    const candidates = [...this.backends.values()].sort((x, y) => x.allocationCount - y.allocationCount);
    for (const backend of candidates) {
      // A relay whose address is no address could never be reached: skip it before it allocates.
      const address = IpAddress.tryParse(backend.address);
      if (!address) continue;
      const relayId = randomBytes(8).toString('hex');
      try {
        const ports = await backend.allocate(relayId, a, b);
        const alloc: Allocation = { relayId, relay: backend.name, a: a.publicKey, b: b.publicKey, forA: Endpoint.of(address, ports.portA), forB: Endpoint.of(address, ports.portB) };
        this.allocations.set(relayId, alloc);
        return alloc;
      } catch {
        // Full or gone: the next relay may have room.
      }
    }
    return undefined;
  }

  alive(relayId: string): boolean {
    const a = this.allocations.get(relayId);
    return a !== undefined && this.backends.get(a.relay)?.has(relayId) === true;
  }

  /** A node's public IP changed: its allocations accept the new one (the port is learned again from a handshake). */
  updateIp(publicKey: string, ip: string): void {
    for (const a of this.allocations.values()) {
      if (a.a !== publicKey && a.b !== publicKey) continue;
      try {
        this.backends.get(a.relay)?.updateIp(a.relayId, publicKey, ip);
      } catch {
        this.released(a.relayId);
      }
    }
  }

  release(relayId: string): void {
    const a = this.allocations.get(relayId);
    if (!a) return;
    this.allocations.delete(relayId);
    this.backends.get(a.relay)?.release(relayId);
  }

  relays(): { name: string; address: string; allocations: number }[] {
    return [...this.backends.values()].map((b) => ({ name: b.name, address: b.address, allocations: b.allocationCount }));
  }

  async stats(): Promise<(RelayStats & { relay: string })[]> {
    const out: (RelayStats & { relay: string })[] = [];
    for (const b of this.backends.values()) for (const s of await b.stats().catch(() => [])) out.push({ ...s, relay: b.name });
    return out;
  }
}
