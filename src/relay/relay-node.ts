import type { Logger } from '../core/log.js';
import { HubLink } from '../core/hub-link.js';
import type { IpAddress } from '../core/net/address.js';
import type { AgentConfig } from '../core/protocol.js';
import { hubToRelaySchema, relayAddressesProblem, toRelayStats, type HubToRelay, type RelayToHubWire } from '../core/relay-protocol.js';
import { KernelPath } from './kernel-path.js';
import { Relay } from './relay.js';

export interface RelayNodeOptions {
  /** NAME.relay.json: the hub's API URL on the tunnel and this relay's token. */
  config: AgentConfig;
  /** Where nodes send to and the ports bind: one address, or one of each family (an IPv6-only node and an IPv4-only node then meet here). */
  addresses: readonly IpAddress[];
  portMin: number;
  portMax: number;
  /** Forward in userspace only, even where the kernel fast path is available. */
  userspace?: boolean;
  log: Logger;
}

/** How often the hub gets the counters (they show in `wgp2p status`). */
const STATS_MS = 5000;

/**
 * A relay on its own machine (`wgp2p relay run`): registers with the hub over its tunnel and
 * serves the allocations the hub makes, and nobody else's. When the connection to the hub drops,
 * the hub has already moved the pairs elsewhere, so every allocation is released.
 */
export class RelayNode {
  private relay!: Relay;
  private link?: HubLink<HubToRelay, RelayToHubWire>;
  private timers: NodeJS.Timeout[] = [];

  constructor(private readonly opts: RelayNodeOptions) {}

  async start(): Promise<void> {
    const addresses = this.opts.addresses;
    // The hub refuses such a hello (relay-protocol.ts): say so here, where it can be fixed.
    const why = relayAddressesProblem(addresses);
    if (why) throw new Error(`--address: ${why}`);
    const kernel = this.opts.userspace ? { kernels: [], userspace: addresses.map((address) => ({ address, reason: '--userspace' })) } : await KernelPath.forAddresses(addresses, { port: this.opts.portMin });
    this.relay = new Relay({
      addresses,
      portMin: this.opts.portMin,
      portMax: this.opts.portMax,
      kernel: kernel.kernels,
      onError: (err) => this.opts.log.warn({ err }, 'relay'),
      onLatched: (id, publicKey, endpoint) => this.send({ type: 'latched', id, publicKey, endpoint }),
      onReleased: (id, reason) => this.send({ type: 'released', id, reason }),
    });
    const texts = this.relay.addresses.map(String);
    // Logged once, here: which families the kernel forwards, and why the others stay in userspace.
    this.opts.log.info(
      {
        addresses: texts,
        ports: [this.opts.portMin, this.opts.portMax],
        kernel: Object.fromEntries(kernel.kernels.map((k) => [`ipv${k.family}`, k.mode])),
        ...(kernel.userspace.length > 0 ? { userspaceBecause: Object.fromEntries(kernel.userspace.map((u) => [`ipv${u.address.family}`, u.reason])) } : {}),
        ...(texts.length > 1 ? { bridged: 'pairs with one side on each family forward in userspace (the kernel path does not translate between families)' } : {}),
      },
      'relay started',
    );
    this.link = new HubLink<HubToRelay, RelayToHubWire>({
      config: this.opts.config,
      path: '/v1/relay',
      schema: hubToRelaySchema,
      log: this.opts.log,
      onOpen: () => this.send({ type: 'hello', addresses: texts, portMin: this.opts.portMin, portMax: this.opts.portMax }),
      onMessage: (m) => void this.onMessage(m),
      onClose: () => void this.releaseAll(),
    });
    this.link.start();
    this.timers.push(
      setInterval(() => {
        void this.relay.stats().then((s) => this.send({ type: 'stats', allocations: s.map(toRelayStats) }));
      }, STATS_MS),
    );
  }

  async stop(): Promise<void> {
    this.timers.forEach(clearInterval);
    this.link?.stop();
    await this.relay.close();
  }

  private send(m: RelayToHubWire): void {
    this.link?.send(m);
  }

  private async releaseAll(): Promise<void> {
    for (const s of await this.relay.stats()) this.relay.release(s.id);
  }

  private async onMessage(m: HubToRelay): Promise<void> {
    switch (m.type) {
      case 'allocate':
        try {
          const ports = await this.relay.allocate(m.id, m.a, m.b);
          this.send({ type: 'allocated', id: m.id, ...ports });
        } catch (err) {
          this.send({ type: 'allocate-failed', id: m.id, error: (err as Error).message.slice(0, 300) });
        }
        return;
      case 'update-ip':
        try {
          this.relay.updateIp(m.id, m.publicKey, m.ip);
        } catch {
          this.send({ type: 'released', id: m.id, reason: 'released' });
        }
        return;
      case 'release':
        this.relay.release(m.id);
        return;
    }
  }
}
