import type { WebSocket } from 'ws';
import { realClock, type Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { HEARTBEAT, heartbeat } from '../core/heartbeat.js';
import { IpAddress } from '../core/net/address.js';
import { decode } from '../core/protocol.js';
import { LogThrottle, TokenBucket } from '../core/rate.js';
import { relayToHubSchema, type HubToRelayWire, type RelayStats, type RelayStream, type RelayStreamStats, type RelayToHub } from '../core/relay-protocol.js';
import { TICKET_FIRST_USE_MS, ticketHash } from '../core/stream/ticket.js';
import type { RelaySideSpec } from '../relay/relay.js';
import type { RelayBackend, RelayPool, RelayStreamReach, SideTickets } from './relay-pool.js';

/** An allocation request the relay did not answer within this long counts as failed (the pool tries the next relay). */
const ALLOCATE_TIMEOUT_MS = 3000;
/**
 * `latched` events a relay may cause per second (each one is NAT knowledge and maybe a log line).
 * A genuine relay sends two per allocation, and again when a node roams: a thousand pairs
 * confirming at once fit in the burst.
 */
const LATCHED_PER_S = 50;
const LATCHED_BURST = 2000;
/** One line per relay per this long about what it sent that was dropped; the next one says how many were left out. */
const DROP_LOG_MS = 10_000;

/** What the hub allocated, to check a relay's claims against. */
interface Made {
  /** Each side's node IP by its public key, as the hub last told the relay. */
  sides: Map<string, IpAddress>;
}

export interface RemoteRelayOptions {
  name: string;
  /** The relay node's public key: the same relay whichever connection it registered over. */
  identity: string;
  /** This connection. */
  key: string;
  /** From its hello: checked there to be one or two relay addresses, at most one per family. */
  addresses: readonly IpAddress[];
  /** Its port range, from its hello: two ports per pair, so it holds (portMax - portMin + 1) / 2 pairs. */
  portMin: number;
  portMax: number;
  /** Its stream side, from its hello; null: it has none. */
  stream: RelayStream | null;
  ws: WebSocket;
  events: { latched(id: string, publicKey: string, endpoint: string): void; released(id: string): void };
  log: Logger;
  clock?: Clock;
}

/** A relay process registered over its tunnel (`wgp2p relay run`), as one of the pool's relays. */
export class RemoteRelay implements RelayBackend {
  readonly name: string;
  readonly identity: string;
  readonly key: string;
  readonly addresses: readonly IpAddress[];
  /** Pairs it has room for; requests beyond it are refused here, before anything is sent. */
  readonly capacity: number;
  readonly stream: RelayStreamReach | null;
  private live = new Map<string, Made>();
  private pending = new Map<string, { made: Made; resolve: (p: { portA: number; portB: number }) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  private lastStats: RelayStats[] = [];
  /** Its stream side's counters, as last reported. */
  streamStats: RelayStreamStats | null = null;
  private retired = false;
  private readonly clock: Clock;
  private readonly latchedBudget: TokenBucket;
  private readonly dropLog = new LogThrottle(DROP_LOG_MS);

  constructor(private readonly opts: RemoteRelayOptions) {
    this.name = opts.name;
    this.identity = opts.identity;
    this.key = opts.key;
    this.addresses = opts.addresses;
    this.stream = opts.stream && { kind: 'own', port: opts.stream.port, pin: opts.stream.pin };
    this.capacity = Math.max(0, Math.floor((opts.portMax - opts.portMin + 1) / 2));
    this.clock = opts.clock ?? realClock;
    this.latchedBudget = new TokenBucket(LATCHED_PER_S, LATCHED_BURST, this.clock.now());
  }

  get allocationCount(): number {
    return this.live.size + this.pending.size;
  }

  private send(m: HubToRelayWire): void {
    const ws = this.opts.ws;
    if (!this.retired && ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
  }

  /** Something the relay said that does not fit what the hub asked of it: dropped, and said at most every DROP_LOG_MS. */
  private dropped(why: string, fields: object): void {
    this.dropLog.note(this.clock.now(), (suppressed) => this.opts.log.warn({ relay: this.name, ...fields, ...(suppressed > 0 ? { suppressed } : {}) }, `relay message dropped: ${why}`));
  }

  allocate(id: string, a: RelaySideSpec, b: RelaySideSpec, tickets: SideTickets = {}): Promise<{ portA: number; portB: number }> {
    // The request is counted (pending) before anything is awaited, so concurrent requests see
    // each other and a full relay is refused here instead of asked.
    if (this.retired) return Promise.reject(new Error(`relay ${this.name} reconnected; this registration is gone`));
    if (this.live.size + this.pending.size >= this.capacity) return Promise.reject(new Error(`relay ${this.name} is full (${this.capacity} pairs in ports ${this.opts.portMin}-${this.opts.portMax})`));
    const made: Made = { sides: new Map([[a.publicKey, ipOf(a)], [b.publicKey, ipOf(b)]]) };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`relay ${this.name} did not answer within ${ALLOCATE_TIMEOUT_MS} ms`));
      }, ALLOCATE_TIMEOUT_MS);
      this.pending.set(id, { made, resolve, reject, timer });
      // The relay gets a ticket's digest only, bound to this allocation and side.
      const wire = (s: RelaySideSpec, ticket: string | undefined) => ({ publicKey: s.publicKey, ip: s.ip.toString(), ...(ticket && this.stream ? { ticket: { hash: ticketHash(id, s.publicKey, ticket), firstUseMs: TICKET_FIRST_USE_MS } } : {}) });
      this.send({ type: 'allocate', id, a: wire(a, tickets.a), b: wire(b, tickets.b) });
    });
  }

  updateIp(id: string, publicKey: string, ip: IpAddress): void {
    const sides = this.live.get(id)?.sides;
    if (sides?.has(publicKey)) sides.set(publicKey, ip.unmapped());
    this.send({ type: 'update-ip', id, publicKey, ip: ip.toString() });
  }

  release(id: string): void {
    this.live.delete(id);
    this.send({ type: 'release', id });
  }

  has(id: string): boolean {
    return this.live.has(id);
  }

  async stats(): Promise<RelayStats[]> {
    return this.lastStats;
  }

  /**
   * A message from the relay, already decoded. Its claims are checked against what the hub
   * allocated: ports in its range, a latched key that is a side of the allocation, at that
   * side's node IP. A relay's latched events are rate-limited; all drops are logged, throttled.
   */
  onMessage(m: RelayToHub): void {
    if (this.retired) return;
    switch (m.type) {
      case 'allocated':
      case 'allocate-failed': {
        const p = this.pending.get(m.id);
        if (!p) return;
        clearTimeout(p.timer);
        this.pending.delete(m.id);
        if (m.type === 'allocate-failed') {
          p.reject(new Error(`relay ${this.name}: ${m.error}`));
          return;
        }
        const inRange = (port: number) => port >= this.opts.portMin && port <= this.opts.portMax;
        if (!inRange(m.portA) || !inRange(m.portB) || m.portA === m.portB) {
          this.dropped('allocated ports outside its range, or one port for both sides', { id: m.id, portA: m.portA, portB: m.portB, range: [this.opts.portMin, this.opts.portMax] });
          this.send({ type: 'release', id: m.id });
          p.reject(new Error(`relay ${this.name} answered ports ${m.portA} and ${m.portB}, which are not two ports of its range ${this.opts.portMin}-${this.opts.portMax}`));
          return;
        }
        this.live.set(m.id, p.made);
        p.resolve({ portA: m.portA, portB: m.portB });
        return;
      }
      case 'latched': {
        const made = this.live.get(m.id);
        if (!made) return; // released meanwhile: nothing to learn
        const ip = made.sides.get(m.publicKey);
        if (!ip) {
          this.dropped('latched names a key that is not a side of the allocation', { id: m.id });
          return;
        }
        if (!ip.equals(m.endpoint.address.unmapped())) {
          this.dropped("latched an endpoint that is not at the side's node IP", { id: m.id, endpoint: m.endpoint.toString(), ip: ip.toString() });
          return;
        }
        if (!this.latchedBudget.take(1, this.clock.now())) {
          this.dropped(`more than ${LATCHED_PER_S} latched events a second`, {});
          return;
        }
        this.opts.events.latched(m.id, m.publicKey, m.endpoint.toString());
        return;
      }
      case 'released':
        if (this.live.delete(m.id)) this.opts.events.released(m.id);
        return;
      case 'stats':
        this.lastStats = m.allocations;
        this.streamStats = m.stream ?? null;
        return;
      case 'hello':
        return;
    }
  }

  /** The relay registered again over another connection: this one is done, and closed. */
  retire(): void {
    this.close();
    this.retired = true;
    this.opts.ws.close(4000, 'superseded by a newer connection of this relay');
  }

  /** The connection went away: nothing it allocated exists any more. */
  close(): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`relay ${this.name} disconnected`));
    }
    this.pending.clear();
    this.live.clear();
  }
}

/** Tells the connections of one relay apart (RelayBackend.key). */
let connections = 0;

/**
 * A relay connected over its tunnel: it joins the pool with its hello; when the connection goes,
 * its allocations are gone and the pool moves the pairs on it to another relay. The pool knows
 * it by its public key and this connection, so a late close of an older connection of the same
 * relay leaves the newer one registered.
 */
export function acceptRelay(node: { name: string; publicKey: string }, ws: WebSocket, pool: RelayPool, latched: (publicKey: string, endpoint: string) => void, log: Logger): void {
  const name = node.name;
  const key = `${node.publicKey}#${++connections}`;
  let relay: RemoteRelay | undefined;
  const malformed = new LogThrottle(DROP_LOG_MS);
  ws.on('message', (data) => {
    let m: RelayToHub;
    try {
      m = decode(relayToHubSchema, data.toString(), `message from relay ${name}`);
    } catch (err) {
      malformed.note(Date.now(), (suppressed) => log.warn({ relay: name, err: (err as Error).message, ...(suppressed > 0 ? { suppressed } : {}) }, 'malformed message ignored'));
      return;
    }
    if (m.type === 'hello' && !relay) {
      const r = new RemoteRelay({ name, identity: node.publicKey, key, addresses: m.addresses, portMin: m.portMin, portMax: m.portMax, stream: m.stream, ws, events: { latched: (_id, k, endpoint) => latched(k, endpoint), released: (id) => pool.released(id) }, log });
      try {
        pool.add(r);
      } catch (err) {
        log.warn({ relay: name, err: (err as Error).message }, 'relay refused');
        ws.close(4003, (err as Error).message.slice(0, 120));
        return;
      }
      relay = r;
      log.info({ relay: name, addresses: m.addresses.map(String), ports: [m.portMin, m.portMax], stream: m.stream }, 'relay registered');
      return;
    }
    relay?.onMessage(m);
  });
  const gone = () => {
    if (!relay) return;
    relay.close();
    pool.remove(relay);
    log.info({ relay: name }, 'relay gone');
    relay = undefined;
  };
  ws.on('close', gone);
  ws.on('error', gone);
  // A relay that died silently would keep its pairs on it until TCP gave up.
  heartbeat(ws, HEARTBEAT, () => log.info({ relay: name }, 'relay stopped answering pings: disconnected'));
}

function ipOf(s: RelaySideSpec): IpAddress {
  return (typeof s.ip === 'string' ? IpAddress.parse(s.ip) : s.ip).unmapped();
}
