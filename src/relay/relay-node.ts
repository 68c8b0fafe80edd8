import type { Logger } from '../core/log.js';
import { HubLink } from '../core/hub-link.js';
import type { IpAddress } from '../core/net/address.js';
import type { AgentConfig } from '../core/protocol.js';
import { hubToRelaySchema, relayAddressesProblem, toRelayStats, type HubToRelay, type RelayToHubWire } from '../core/relay-protocol.js';
import { realClock } from '../core/clock.js';
import type { TlsIdentity } from '../core/stream/tls-identity.js';
import { KernelPath } from './kernel-path.js';
import { Relay } from './relay.js';
import { StreamServer, type StreamLimits } from './stream-server.js';
import { TicketBook } from './ticket-book.js';

export interface RelayNodeOptions {
  /** NAME.relay.json: the hub's API URL on the tunnel and this relay's token. */
  config: AgentConfig;
  /** Where nodes send to and the ports bind: one address, or one of each family (an IPv6-only node and an IPv4-only node then meet here). */
  addresses: readonly IpAddress[];
  portMin: number;
  portMax: number;
  /** Forward in userspace only, even where the kernel fast path is available. */
  userspace?: boolean;
  /**
   * The stream side (WireGuard over TLS for nodes whose networks block UDP): its TCP port on the
   * relay's addresses and its TLS identity; absent (--no-tcp): none, and the hub sends this relay
   * no pair with a side on a stream.
   */
  stream?: { port: number; identity: TlsIdentity; limits?: Partial<StreamLimits> };
  log: Logger;
}

/** How often the hub gets the counters (they show in `wgp2p status`). */
const STATS_MS = 5000;

/**
 * A relay on its own machine (`wgp2p relay run`): registers with the hub over its tunnel and
 * serves the allocations the hub makes, and nobody else's. When the connection to the hub drops,
 * the hub has already moved the pairs elsewhere, so every allocation is released.
 *
 * Its stream side (TCP 443 unless told otherwise) serves nodes whose networks block UDP. It knows
 * no tokens: a node opens its side of an allocation with the ticket the hub gave it, whose digest
 * came with the `allocate` (ticket-book.ts); nothing else opens anything.
 */
export class RelayNode {
  private relay!: Relay;
  private server?: StreamServer;
  private readonly tickets = new TicketBook(realClock);
  /** The stream side's port as bound (0 in the options: one the system chose). */
  streamPort: number | undefined;
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
      log: this.opts.log,
      onLatched: (id, publicKey, endpoint) => this.send({ type: 'latched', id, publicKey, endpoint }),
      onReleased: (id, reason) => {
        this.forget(id);
        this.send({ type: 'released', id, reason });
      },
    });
    const stream = this.opts.stream;
    if (stream) {
      const relay = this.relay;
      const server = new StreamServer({
        tls: stream.identity,
        // No tokens here: the hub's tickets are the only credential (ticket-book.ts), one per side of an allocation.
        tickets: (id, ticket, publicKey) => this.tickets.verify(id, ticket, publicKey),
        streamSide: (id, k) => relay.streamSide(id, k),
        limits: stream.limits,
        log: this.opts.log,
      });
      // One address: that one. Two (one per family): both, as one dual-stack socket.
      const host = addresses.length === 1 ? addresses[0]!.toString() : '::';
      try {
        this.streamPort = await server.listen(host, stream.port);
      } catch (err) {
        await this.relay.close();
        throw err;
      }
      this.server = server;
    }
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
    if (this.server) this.opts.log.info({ port: this.streamPort, pin: stream!.identity.pin }, 'stream side listening (WireGuard over TLS, relay tickets from the hub)');
    this.link = new HubLink<HubToRelay, RelayToHubWire>({
      config: this.opts.config,
      path: '/v1/relay',
      schema: hubToRelaySchema,
      log: this.opts.log,
      onOpen: () => this.send({ type: 'hello', addresses: texts, portMin: this.opts.portMin, portMax: this.opts.portMax, ...(this.server && this.streamPort !== undefined ? { stream: { port: this.streamPort, pin: stream!.identity.pin } } : {}) }),
      onMessage: (m) => void this.onMessage(m),
      onClose: () => void this.releaseAll(),
    });
    this.link.start();
    this.timers.push(
      setInterval(() => {
        const stream = this.server?.stats();
        void this.relay.stats().then((s) => this.send({ type: 'stats', allocations: s.map(toRelayStats), ...(stream ? { stream } : {}) }));
      }, STATS_MS),
    );
  }

  async stop(): Promise<void> {
    this.timers.forEach(clearInterval);
    this.link?.stop();
    await this.server?.close();
    this.tickets.clear();
    await this.relay.close();
  }

  private send(m: RelayToHubWire): void {
    this.link?.send(m);
  }

  private async releaseAll(): Promise<void> {
    for (const s of await this.relay.stats()) {
      this.relay.release(s.id);
      this.forget(s.id);
    }
  }

  /** An allocation is gone: its tickets, and the stream channels to it. */
  private forget(id: string): void {
    this.tickets.release(id);
    this.server?.released(id);
  }

  /** The stream side's counters (closes by reason, bytes), for tests and a future status. */
  streamStats(): ReturnType<StreamServer['stats']> | undefined {
    return this.server?.stats();
  }

  private async onMessage(m: HubToRelay): Promise<void> {
    switch (m.type) {
      case 'allocate':
        try {
          const ports = await this.relay.allocate(m.id, m.a, m.b);
          // Only once the allocation exists: a ticket is never good for an id the relay does not hold.
          for (const side of [m.a, m.b]) if (side.ticket && this.server) this.tickets.add(m.id, side.publicKey, side.ticket.hash, side.ticket.firstUseMs);
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
        this.forget(m.id);
        return;
    }
  }
}
