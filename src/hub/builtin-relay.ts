import { toRelayStats, type RelayStats } from '../core/relay-protocol.js';
import { Relay, type RelayOptions, type RelaySideSpec } from '../relay/relay.js';
import type { RelayBackend } from './relay-pool.js';

/** The relay inside the hub process, as one of the pool's relays. */
export class BuiltinRelay implements RelayBackend {
  readonly name = 'builtin';
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

  get address(): string {
    return this.relay.address;
  }

  get allocationCount(): number {
    return this.count;
  }

  async allocate(id: string, a: RelaySideSpec, b: RelaySideSpec): Promise<{ portA: number; portB: number }> {
    const ports = await this.relay.allocate(id, a, b);
    this.count++;
    return ports;
  }

  updateIp(id: string, publicKey: string, ip: string): void {
    this.relay.updateIp(id, publicKey, ip);
  }

  release(id: string): void {
    this.relay.release(id);
  }

  has(id: string): boolean {
    return this.relay.has(id);
  }

  async stats(): Promise<RelayStats[]> {
    return (await this.relay.stats()).map(toRelayStats);
  }

  close(): Promise<void> {
    return this.relay.close();
  }
}
