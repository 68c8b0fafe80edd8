import type { Cancel, Clock } from '../../core/clock.js';
import type { Logger } from '../../core/log.js';
import type { PortMapperStatusJson } from '../../core/status.js';
import type { GatewayInfo } from './gateway.js';
import { initialMapper, LEASE_S, stepMapper, type Grant, type Mapping, type MapperEffect, type MapperInput, type MapperState } from './machine.js';
import type { PortMapClient } from './protocols.js';

/**
 * Runs the port-mapping machine (machine.ts): carries out its effects, feeds results back, owns
 * its one timer. Protocols are asked in order, first usable grant wins:
 * 1. PCP, then 2. NAT-PMP: both on the gateway's port 5351, and a NAT-PMP-only router answers a
 *    PCP request with a version-0 reply (RFC 6887 section 9), so asking PCP first costs nothing
 *    there. Both carry an epoch (a reboot is noticed within a minute) and the granted lifetime.
 * 3. UPnP-IGD last: SSDP discovery takes up to 3 s, and it has neither epoch nor lifetime.
 * A renewal asks the protocol that granted the mapping first, with its handle (PCP's nonce).
 * Results of a request that a network change or stop overtook are released, never used.
 */

export interface PortMapperDeps {
  clock: Clock;
  log: Logger;
  /** WireGuard's listen port now. */
  internalPort(): Promise<number>;
  gateway(): Promise<GatewayInfo | null>;
  /** In the order they are asked. */
  clients: readonly PortMapClient[];
  /** The mapping the hub and status should know about (null: none). */
  report(m: Mapping | null): void;
  /** The first round of requests ended, mapped or not (see firstAnswerPending). */
  firstAnswer?(): void;
}

/** How long a new node's pairs wait for the router's first answer (see firstAnswerPending). */
export const FIRST_ANSWER_MS = 250;

export class PortMapper {
  private state: MapperState = initialMapper;
  private timer?: Cancel;
  private queue: Promise<void> = Promise.resolve();
  private generation = 0;
  private port = 0;
  private gw: GatewayInfo | null = null;
  private current: Mapping | null = null;
  /** The router has answered (or not, for the whole first round) since start: see firstAnswerPending. */
  private answered = false;
  private firstAnswerTimer?: Cancel;

  constructor(private readonly deps: PortMapperDeps) {}

  /**
   * Whether the first answer may still come. The hub holds a new node's first attempts for it
   * (hub/mapping-wait.ts): a punch made before the mapping is known breaks it. A router that
   * serves PCP or NAT-PMP grants within a LAN round trip (a NAT-PMP-only one refuses PCP's
   * version at once, and the next request is granted); one that serves neither stays silent
   * through the retransmissions, and UPnP's discovery takes seconds. So the wait lasts until
   * the first round ends or FIRST_ANSWER_MS, whichever comes first: a node behind a silent router
   * starts its pairs at most that much later. 250 ms is PCP's first retransmission here
   * (udp-exchange.ts); in the NAT matrix at load average 8 the lab's miniupnpd had granted within
   * 120 ms of the agent's connect, and 500 ms put every other cell's first path ~350 ms later.
   */
  firstAnswerPending(): boolean {
    return !this.answered && this.state.phase === 'requesting';
  }

  start(): void {
    this.feed({ type: 'start' });
    this.firstAnswerTimer = this.deps.clock.after(FIRST_ANSWER_MS, () => this.firstAnswerOver());
  }

  networkChanged(): void {
    this.feed({ type: 'network-changed' });
  }

  /** Deletes the mapping at the router (a clean exit), then goes idle. */
  async stop(): Promise<void> {
    this.feed({ type: 'stop' });
    this.timer?.();
    this.firstAnswerTimer?.();
    await this.queue;
  }

  mapping(): Mapping | null {
    return this.current;
  }

  status(): PortMapperStatusJson {
    const s = this.state;
    const now = this.deps.clock.now();
    const m = this.current;
    return {
      state: s.phase,
      mapping: m && { protocol: m.protocol, external: m.external.toString(), expiresInMs: Math.max(0, m.expiresAt - now) },
      gateway: this.gw?.gateway.toString() ?? null,
      problem: s.problem,
      nextTryInMs: s.phase === 'waiting' ? Math.max(0, s.retryAt - now) : null,
    };
  }

  private feed(input: MapperInput): void {
    const step = stepMapper(this.state, input, this.deps.clock.now(), this.port);
    const wasPending = this.firstAnswerPending();
    this.state = step.state;
    for (const e of step.effects) this.effect(e);
    if (wasPending && this.state.phase !== 'requesting') this.firstAnswerOver();
  }

  private effect(e: MapperEffect): void {
    switch (e.type) {
      case 'arm':
        this.timer?.();
        this.timer = this.deps.clock.after(Math.max(0, e.at - this.deps.clock.now()), () => this.feed({ type: 'timer' }));
        return;
      case 'report':
        this.current = e.mapping;
        this.deps.report(e.mapping);
        return;
      case 'log':
        this.deps.log[e.level]({ portMapping: true }, e.msg);
        return;
      case 'request': {
        const gen = ++this.generation;
        this.enqueue(async () => {
          const r = await this.request(e.renew);
          if (gen !== this.generation) {
            if (r.ok) await this.release(r.grant);
            return;
          }
          this.feed(r.ok ? { type: 'granted', grant: r.grant } : { type: 'failed', problem: r.problem, answered: r.answered });
        });
        return;
      }
      case 'check': {
        const gen = this.generation;
        this.enqueue(async () => {
          const client = this.deps.clients.find((c) => c.protocol === e.mapping.protocol);
          const serverS = client && this.gw ? await client.epoch(this.gw) : null;
          if (gen === this.generation) this.feed({ type: 'epoch', serverS });
        });
        return;
      }
      case 'delete':
        this.generation++;
        this.enqueue(() => this.release(e.mapping));
        return;
      case 'release':
        this.enqueue(() => this.release(e.grant));
        return;
    }
  }

  private firstAnswerOver(): void {
    this.firstAnswerTimer?.();
    if (this.answered) return;
    this.answered = true;
    this.deps.firstAnswer?.();
  }

  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((err: unknown) => this.deps.log.warn({ err }, 'port mapping task failed'));
  }

  private async release(g: Pick<Grant, 'protocol' | 'internalPort' | 'external' | 'handle'>): Promise<void> {
    const client = this.deps.clients.find((c) => c.protocol === g.protocol);
    if (client && this.gw) await client.unmap(this.gw, g);
  }

  private async request(renew: Mapping | null): Promise<{ ok: true; grant: Grant } | { ok: false; problem: string; answered: boolean }> {
    this.port = await this.deps.internalPort();
    if (!this.port) return { ok: false, problem: 'WireGuard has no listen port yet', answered: false };
    const gw = await this.deps.gateway();
    this.gw = gw;
    if (!gw) return { ok: false, problem: 'no IPv4 default gateway to ask for a port mapping', answered: false };
    const order = renew ? [...this.deps.clients.filter((c) => c.protocol === renew.protocol), ...this.deps.clients.filter((c) => c.protocol !== renew.protocol)] : this.deps.clients;
    const problems: string[] = [];
    let answered = false;
    for (const c of order) {
      const r = await c.map(gw, this.port, LEASE_S, renew?.protocol === c.protocol ? renew.handle : undefined);
      if (r.ok) return r;
      problems.push(r.problem);
      answered ||= r.answered;
    }
    return { ok: false, problem: `no port mapping from ${gw.gateway}: ${problems.join('; ')}`, answered };
  }
}
