import type { IpAddress } from '../core/net/address.js';
import type { HostPort } from '../core/net/endpoint.js';
import { relayAddressesProblem, relayAddressProblem, toRelayStats, type RelayStats } from '../core/relay-protocol.js';
import { Relay, type RelayOptions, type RelaySideSpec, type StreamSide } from '../relay/relay.js';
import { BUILTIN_RELAY, type RelayBackend, type RelayStreamReach } from './relay-pool.js';

/**
 * The addresses of the hub's own relay: those given (`hub run --relay-address`, repeatable), or
 * else the hub's endpoints that are IP literals, the first of each family: nodes reach the hub
 * there, so they reach its relay there too. An endpoint that is a DNS name gives none (which
 * address it resolves to is the resolver's business, and the relay must bind one); with no
 * address at all the hub runs without a relay of its own.
 */
export function builtinRelayAddresses(given: readonly IpAddress[] | undefined, endpoints: readonly HostPort[]): IpAddress[] {
  if (given !== undefined && given.length > 0) {
    const why = relayAddressesProblem(given);
    if (why) throw new Error(`--relay-address: ${why}`);
    return [...given].sort((x, y) => x.family - y.family);
  }
  const out: IpAddress[] = [];
  for (const e of endpoints) {
    const a = e.address;
    if (a && !out.some((x) => x.family === a.family) && relayAddressProblem(a) === null) out.push(a);
  }
  return out.sort((x, y) => x.family - y.family);
}

/** The relay inside the hub process, as one of the pool's relays. */
export class BuiltinRelay implements RelayBackend {
  readonly name = BUILTIN_RELAY;
  readonly identity = BUILTIN_RELAY;
  readonly key = BUILTIN_RELAY;
  /** Set by the hub once its stream side runs: the built-in relay's stream sides ride it. */
  stream: RelayStreamReach | null = null;
  private readonly relay: Relay;
  private count = 0;

  constructor(opts: RelayOptions) {
    this.relay = new Relay({
      ...opts,
      onReleased: (id, reason) => {
        this.count = Math.max(0, this.count - 1);
        opts.onReleased?.(id, reason);
      },
    });
  }

  get addresses(): readonly IpAddress[] {
    return this.relay.addresses;
  }

  get allocationCount(): number {
    return this.count;
  }

  async allocate(id: string, a: RelaySideSpec, b: RelaySideSpec): Promise<{ portA: number; portB: number }> {
    // Counted before the await: the pool picks the least loaded relay, and concurrent requests must see each other.
    this.count++;
    try {
      return await this.relay.allocate(id, a, b);
    } catch (err) {
      this.count--;
      throw err;
    }
  }

  updateIp(id: string, publicKey: string, ip: IpAddress): void {
    this.relay.updateIp(id, publicKey, ip);
  }

  release(id: string): void {
    this.relay.release(id);
  }

  has(id: string): boolean {
    return this.relay.has(id);
  }

  /** For the hub's stream side (stream-side.ts). */
  streamSide(id: string, publicKey: string): StreamSide {
    return this.relay.streamSide(id, publicKey);
  }

  async stats(): Promise<RelayStats[]> {
    return (await this.relay.stats()).map(toRelayStats);
  }

  close(): Promise<void> {
    return this.relay.close();
  }
}
