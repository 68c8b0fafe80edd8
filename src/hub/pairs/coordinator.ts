import { gather, kindOf, tcpRelay, TCP_RELAY_ID, type Candidate, type CandidateKind, type NodeView } from '../../core/candidates/index.js';
import { realClock, KeyedTimers, type Clock } from '../../core/clock.js';
import type { Logger } from '../../core/log.js';
import type { Endpoint } from '../../core/net/endpoint.js';
import type { PathCommand, PathEvent, PeerReport } from '../../core/protocol.js';
import type { PairStatusJson } from '../../core/status.js';
import type { Observer } from '../nat-knowledge.js';
import type { StreamGrant } from '../relay-pool.js';
import { advance, startAttempt, type Attempt, type AttemptInput, type AttemptTimer, type Side, type Sides, type Step } from './attempt.js';
import { initiatorOf, opensFirst } from './initiator.js';

/**
 * Chooses the path of every agent pair, continuously: direct where hole punching works, the
 * relay where it cannot, back to direct when it can again.
 *
 * - A pair exists while both agents share a group, from the moment both have connected.
 * - Its candidates come from the candidate kinds (core/candidates), best first; what the hub
 *   knows about each NAT (nat-knowledge.ts) skips kinds that cannot work. The attempt over them
 *   is the state machine in attempt.ts.
 * - A failed pair goes to the relay and retries direct with backoff, at once when either side's
 *   network changes. Retries from the relay only borrow the path for a hole punch (holdMs), so a
 *   retry that fails costs a few packets, not the tunnel.
 * - It switches only on evidence: to direct when both sides saw the peer's packets directly, away
 *   from a working path only when it is reported lost. A pair that keeps losing its direct path
 *   soon after getting it backs off for minutes instead of flapping.
 */

export interface PairNode {
  name: string;
  proxied: boolean;
}

export interface RelayGrant {
  relayId: string;
  /** The relay's name, for status and the agents' status. */
  relay?: string;
  /** Where side a sends to reach b through the relay, and b to reach a. */
  forA: Endpoint;
  forB: Endpoint;
  /** A side that rides a relay's own stream side (not the hub's): where, the pin, its ticket. */
  streamA?: StreamGrant;
  streamB?: StreamGrant;
}

/** What the coordinator reads from, and tells, the owner of NAT knowledge. */
export interface NatLearning {
  view(key: string): NodeView;
  observedBy(key: string, endpoint: Endpoint, by: Observer): unknown;
  attemptEnded(x: string, y: string, succeeded: boolean): void;
  /** A candidate failed or carried the pair: what it says about a port mapping it went through. */
  candidateFailed(x: string, y: string, c: Candidate, o: { ready: Sides<boolean>; heard: Sides<boolean> }): void;
  candidateWorked(x: string, y: string, c: Candidate): void;
}

export interface PairDeps {
  node(key: string): PairNode | undefined;
  /** Whether two agents may reach each other (they share a group). */
  pairable(x: string, y: string): boolean;
  send(key: string, cmd: PathCommand): void;
  nat: NatLearning;
  allocateRelay(a: string, b: string): Promise<RelayGrant | undefined>;
  relayAlive(grant: RelayGrant): boolean;
  releaseRelay(grant: RelayGrant): void;
  log: Logger;
  clock?: Clock;
  /**
   * Whether what the hub learns about a node's NAT right after it connects (hub/wan-probe.ts) is
   * still under way: its pairs' first attempt waits for it, since the order of the punch depends
   * on it, and the owner calls `natSettled` when it is done.
   */
  natPending?(key: string): boolean;
}

export interface PairTimings {
  /** Attempt timings: see attempt.ts. Windows are the candidate kinds' own. */
  holdMs: number;
  graceMs: number;
  backoffBaseMs: number;
  /** Retry cap while a pair's NATs look compatible: a retry costs one punch, so retry often. */
  backoffCapMs: number;
  /** Retry interval for pairs that cannot go direct as far as the hub knows, or keep losing it. */
  slowRetryMs: number;
  /** A direct path that lasted this long counts as stable: the pair's failure count starts over. */
  stableMs: number;
  /** A relay allocation that carried nothing both ways within this long is replaced (both sides handshake again). */
  relayConfirmMs: number;
  /**
   * Retry spacing after a failed attempt with a side whose router takes unsolicited WAN input. A
   * punch that reached such a router first left a conntrack entry that holds the node's port
   * toward the peer as long as packets keep coming (Linux: 30 s for unreplied UDP), and every
   * retry sooner than that refreshes it: in the lab, no leaky pair whose first attempt failed
   * went direct in the next 13 s of 1-8 s retries (bench/leaky.ts, before the hub knew the
   * order). Waiting it out lets the next attempt, in the right order, find the port free.
   */
  leakyRetryMs: number;
}

export const DEFAULT_TIMINGS: PairTimings = {
  holdMs: 50,
  graceMs: 400,
  backoffBaseMs: 1000,
  backoffCapMs: 8000,
  slowRetryMs: 300_000,
  stableMs: 60_000,
  relayConfirmMs: 5000,
  leakyRetryMs: 35_000,
};

/** The path a pair is committed to (core/paths.ts names the vias); waiting and no-path are the hub's own. */
type PairPath =
  | { via: 'waiting' }
  | { via: 'no-path' }
  | { via: 'hub' }
  | { via: 'direct'; kind: CandidateKind; endpoints: Sides<Endpoint>; seq: number }
  | { via: 'relay'; seq: number; ok: Sides<boolean> };

export type PairMode = PairPath['via'];

type TimerName = `attempt:${AttemptTimer}` | 'retry' | 'relay-confirm' | 'relay-retry';

interface Pair {
  id: string;
  a: string;
  b: string;
  path: PairPath;
  /** The last command number sent for this pair: agents ignore anything not newer. */
  seq: number;
  attempt: Attempt | null;
  /** The relay allocation the pair holds, used or not: a direct pair keeps it to fall back fast. */
  grant: RelayGrant | null;
  /** A relay allocation in flight, by token: anything that supersedes it clears this. */
  allocating: number | null;
  relayTries: number;
  /** Relay allocations that failed in a row: their retries back off. */
  allocationFailures: number;
  failures: number;
  unstable: number;
  directSince: number | null;
  retryAt: number | null;
  /** When the last attempt began: retries are spaced from attempt to attempt, not from the end of one. */
  lastAttemptAt: number;
  reason: string | null;
  since: number;
  directAfterMs: number | null;
  /** When both agents were first connected, and how long the first working path (direct, or relay with traffic through it) took from then. */
  readyAt: number | null;
  firstPathMs: number | null;
  /** Committed paths, oldest first (bounded): what a test reads to tell a clean switch from flapping. */
  history: { mode: PairMode; at: number; reason: string | null }[];
  timers: KeyedTimers<TimerName>;
}

/** A pair as `status` shows it (core/status.ts), without the relay's counters, which the hub adds. */
export type PairStatus = Omit<PairStatusJson, 'relayed'>;

const pairId = (x: string, y: string) => (x < y ? `${x}|${y}` : `${y}|${x}`);
const SIDES = ['a', 'b'] as const;

export class PairPaths {
  private pairs = new Map<string, Pair>();
  private byNode = new Map<string, Set<Pair>>();
  /** Agents whose control connection is up and who said hello. */
  private online = new Set<string>();
  /** The last report of each agent about each peer, for rebuilding state after a hub restart. */
  private reports = new Map<string, Map<string, PeerReport>>();
  private readonly t: PairTimings;
  private readonly clock: Clock;
  private tokens = 0;

  constructor(
    private readonly deps: PairDeps,
    timings: Partial<PairTimings> = {},
  ) {
    this.t = { ...DEFAULT_TIMINGS, ...timings };
    this.clock = deps.clock ?? realClock;
  }

  private now(): number {
    return this.clock.now();
  }

  // ---- membership -------------------------------------------------------------------------------

  /** An agent (re)connected and said what its device does for each peer. */
  connected(key: string, peers: PeerReport[]): void {
    this.online.add(key);
    this.reports.set(key, new Map(peers.map((r) => [r.publicKey, r])));
    for (const other of this.online) if (other !== key && this.deps.pairable(key, other)) this.ensure(key, other);
    for (const p of this.byNode.get(key) ?? []) {
      if (!this.bothOnline(p)) continue;
      if (p.path.via === 'waiting') this.adopt(p);
      else this.resend(p);
    }
  }

  disconnected(key: string): void {
    this.online.delete(key);
    this.reports.delete(key);
    for (const p of this.byNode.get(key) ?? []) {
      this.cancelAttempt(p);
      p.timers.disarm('relay-confirm');
    }
  }

  /** A node's groups changed, or it was removed: pairs it may no longer have go, new ones start. */
  refresh(key: string): void {
    for (const p of [...(this.byNode.get(key) ?? [])]) if (!this.deps.pairable(p.a, p.b)) this.destroy(p);
    if (!this.online.has(key)) return;
    for (const other of this.online) {
      if (other === key || !this.deps.pairable(key, other) || this.pairs.has(pairId(key, other))) continue;
      this.evaluate(this.ensure(key, other), 'new pair');
    }
  }

  private ensure(x: string, y: string): Pair {
    const id = pairId(x, y);
    const have = this.pairs.get(id);
    if (have) return have;
    const [a, b] = x < y ? [x, y] : [y, x];
    const p: Pair = {
      id,
      a,
      b,
      path: { via: 'waiting' },
      seq: 0,
      attempt: null,
      grant: null,
      allocating: null,
      relayTries: 0,
      allocationFailures: 0,
      failures: 0,
      unstable: 0,
      directSince: null,
      retryAt: null,
      lastAttemptAt: 0,
      reason: null,
      since: this.now(),
      directAfterMs: null,
      readyAt: null,
      firstPathMs: null,
      history: [],
      timers: new KeyedTimers(this.clock),
    };
    this.pairs.set(id, p);
    for (const k of [a, b]) {
      if (!this.byNode.has(k)) this.byNode.set(k, new Set());
      this.byNode.get(k)!.add(p);
    }
    return p;
  }

  private destroy(p: Pair): void {
    p.timers.clear();
    p.attempt = null;
    p.allocating = null;
    this.dropRelay(p);
    this.pairs.delete(p.id);
    this.byNode.get(p.a)?.delete(p);
    this.byNode.get(p.b)?.delete(p);
  }

  // ---- what the hub tells us ------------------------------------------------------------------

  /** The node's public endpoint or network changed: its pairs try again now, backoff forgotten. */
  changed(key: string, why: string): void {
    for (const p of this.byNode.get(key) ?? []) {
      p.failures = 0;
      this.evaluate(p, why);
    }
  }

  /** What the hub learns about a node's NAT at connect is in (or gave up): pairs that waited for it start. */
  natSettled(key: string): void {
    for (const p of this.byNode.get(key) ?? []) if (p.path.via === 'waiting' && !p.attempt && this.bothOnline(p)) this.adopt(p);
  }

  /**
   * A node's port mapping came, changed or went: its pairs that are not direct try again (one
   * that is direct keeps its path; if that path ran over the old mapping and it stops forwarding,
   * the dead-path check moves it).
   */
  mappingChanged(key: string, why: string): void {
    for (const p of this.byNode.get(key) ?? []) {
      if (p.path.via === 'direct' || p.path.via === 'hub') continue;
      p.failures = 0;
      this.evaluate(p, why);
    }
  }

  /** A node chose or left proxied mode, or anything else that changes every pair of it. */
  reevaluate(key: string, why: string): void {
    for (const p of this.byNode.get(key) ?? []) this.evaluate(p, why);
  }

  relayGone(relayId: string): void {
    for (const p of this.pairs.values()) {
      if (p.grant?.relayId !== relayId) continue;
      p.grant = null;
      if (p.path.via === 'relay') this.goRelay(p, 'the relay allocation went away');
    }
  }

  onEvent(key: string, ev: PathEvent): void {
    const p = this.pairs.get(pairId(key, ev.publicKey));
    if (!p) return;
    const side: Side = key === p.a ? 'a' : 'b';
    const at = p.attempt;
    this.deps.log.debug({ pair: [this.name(p.a), this.name(p.b)], from: this.name(key), event: ev.event, seq: ev.seq, attemptSeq: at?.seq ?? null, endpoint: ev.event === 'heard' ? ev.endpoint.toString() : null }, 'path event');
    switch (ev.event) {
      case 'ready':
        return this.input(p, { type: 'ready', side, seq: ev.seq, opened: ev.opened });
      case 'unheard':
        return this.input(p, { type: 'unheard', side, seq: ev.seq });
      case 'heard':
        if (at) return this.input(p, { type: 'heard', side, seq: ev.seq, endpoint: ev.endpoint });
        // The peer reached us directly while we are relayed (its NAT opened on its own): try now.
        if (p.path.via === 'relay' && ev.seq === p.path.seq) this.evaluate(p, `${this.name(key)} heard ${this.name(ev.publicKey)} directly`, true);
        return;
      case 'relay-ok': {
        const path = p.path;
        if (path.via !== 'relay' || ev.seq !== path.seq) return;
        path.ok[side] = true;
        if (path.ok.a && path.ok.b) {
          p.timers.disarm('relay-confirm');
          p.relayTries = 0;
          this.firstPath(p);
        }
        return;
      }
      case 'lost':
        if (at) return;
        if (p.path.via === 'direct' && ev.seq === p.path.seq) {
          if (p.directSince !== null && this.now() - p.directSince < this.t.stableMs) p.unstable++;
          p.failures++;
          this.goRelay(p, `the direct path went silent (reported by ${this.name(key)})`);
          this.scheduleRetry(p);
        } else if (p.path.via === 'relay' && ev.seq === p.path.seq) {
          this.dropRelay(p);
          this.goRelay(p, `the relay path went silent (reported by ${this.name(key)})`);
        }
        return;
    }
  }

  status(): PairStatus[] {
    const now = this.now();
    return [...this.pairs.values()].map((p) => {
      const path = p.path;
      return {
        a: this.name(p.a),
        b: this.name(p.b),
        mode: path.via,
        confirmed: path.via === 'direct' || path.via === 'hub' || (path.via === 'relay' && path.ok.a && path.ok.b),
        attempting: p.attempt !== null,
        via: path.via === 'relay' ? relayVia(p.grant) : path.via === 'direct' ? path.kind.id : null,
        candidate: path.via === 'direct' ? path.kind.id : null,
        // A relay that bridges the families has one side on each: no one family to name.
        family: path.via === 'direct' ? path.endpoints.a.family : path.via === 'relay' && p.grant && p.grant.forA.family === p.grant.forB.family ? p.grant.forA.family : null,
        bridged: path.via === 'relay' && p.grant !== null && p.grant.forA.family !== p.grant.forB.family,
        relayId: p.grant?.relayId ?? null,
        relay: path.via === 'relay' ? (p.grant?.relay ?? null) : null,
        streamSides: path.via === 'relay' ? this.streamSides(p) : [],
        sinceMs: now - p.since,
        directAfterMs: p.directAfterMs,
        firstPathMs: p.firstPathMs,
        failures: p.failures,
        nextRetryInMs: p.retryAt === null ? null : Math.max(0, p.retryAt - now),
        reason: p.reason,
        history: p.history.map((h) => ({ mode: h.mode, agoMs: now - h.at, reason: h.reason })),
      };
    });
  }

  get size(): number {
    return this.pairs.size;
  }

  private streamSides(p: Pair): string[] {
    const v = this.views(p);
    return [v.a, v.b].filter((n) => tcpRelay.onStream(n)).map((n) => n.name);
  }

  close(): void {
    for (const p of this.pairs.values()) {
      p.timers.clear();
      p.allocating = null;
    }
  }

  // ---- decisions ------------------------------------------------------------------------------

  private name(key: string): string {
    return this.deps.node(key)?.name ?? key.slice(0, 8);
  }

  private bothOnline(p: Pair): boolean {
    return this.online.has(p.a) && this.online.has(p.b);
  }

  /**
   * After a hub restart: pairs whose agents both still go direct (a recent handshake on a
   * non-relay endpoint) stay direct without an attempt; everything else is decided afresh.
   */
  private adopt(p: Pair): void {
    const ra = this.reports.get(p.a)?.get(p.b);
    const rb = this.reports.get(p.b)?.get(p.a);
    // WireGuard keeps a session for 180 s (REJECT_AFTER_TIME): an older handshake is no evidence.
    const live = (r?: PeerReport): r is PeerReport & { endpoint: Endpoint } => r?.path === 'direct' && r.endpoint !== null && r.handshakeAgeMs !== null && r.handshakeAgeMs < 150_000;
    if (live(ra) && live(rb)) {
      p.directSince = this.now();
      this.commit(p, { via: 'direct', kind: kindOf(ra.kind ?? 'public4'), endpoints: { a: ra.endpoint, b: rb.endpoint }, seq: 0 }, 'still direct (adopted after the hub restarted)');
      this.sendDirect(p);
      return;
    }
    this.evaluate(p, 'both agents connected');
  }

  /** An agent reconnected to a hub that kept running: tell it again what the pair does. */
  private resend(p: Pair): void {
    if (p.attempt) return;
    if (p.path.via === 'direct') this.sendDirect(p);
    else if (p.path.via === 'relay' && p.grant) this.sendRelay(p);
    else if (p.path.via === 'hub') this.sendHub(p);
    else this.evaluate(p, 'agent reconnected');
  }

  private firstPath(p: Pair): void {
    if (p.firstPathMs === null && p.readyAt !== null) p.firstPathMs = this.now() - p.readyAt;
  }

  private views(p: Pair): { a: NodeView; b: NodeView } {
    return { a: this.deps.nat.view(p.a), b: this.deps.nat.view(p.b) };
  }

  /**
   * The pair's candidates, those the hub knows cannot work, and why the first of those cannot.
   * No candidate at all with both nodes seen means they share no address family (one has only
   * IPv4, the other only IPv6): only the relay, which bridges families, connects them.
   */
  private viable(p: Pair): { all: Candidate[]; viable: Candidate[]; blocked: string | null; bothSeen: boolean } {
    const v = this.views(p);
    // A side on the hub's TLS stream has no UDP: the relay, that side over the stream (tcp-relay).
    const onStream = tcpRelay.blocksDirect(v.a, v.b);
    if (onStream) return { all: [], viable: [], blocked: onStream, bothSeen: (v.a.seen ?? v.a.stream) != null && (v.b.seen ?? v.b.stream) != null };
    const all = gather(v.a, v.b);
    let blocked: string | null = null;
    const viable = all.filter((c) => {
      const why = c.kind.blocked(v.a, v.b);
      blocked ??= why;
      return why === null;
    });
    const bothSeen = v.a.seen !== null && v.b.seen !== null;
    if (all.length === 0 && bothSeen) blocked = `${v.a.name} and ${v.b.name} have no address family in common (${describe(v.a)}; ${describe(v.b)})`;
    return { all, viable, blocked, bothSeen };
  }

  private evaluate(p: Pair, why: string, force = false): void {
    p.timers.disarm('retry');
    p.retryAt = null;
    if (!this.bothOnline(p)) return;
    p.readyAt ??= this.now();
    // Only a pair's first attempt waits (natSettled starts it); later ones use what is known.
    if (p.path.via === 'waiting' && (this.deps.natPending?.(p.a) || this.deps.natPending?.(p.b))) return;
    const a = this.deps.node(p.a);
    const b = this.deps.node(p.b);
    if (!a || !b) return;
    if (a.proxied || b.proxied) {
      this.cancelAttempt(p);
      p.allocating = null;
      this.commit(p, { via: 'hub' }, `${a.proxied ? a.name : b.name} chose proxied mode: through the hub`);
      this.sendHub(p);
      return;
    }
    const { all, viable, blocked, bothSeen } = this.viable(p);
    if (all.length === 0 && !bothSeen) return; // an endpoint is not known yet: the poll that sees it calls changed()
    // A scheduled retry tries even where the hub thinks it cannot work: what it knows may be stale.
    const cands = force ? all : viable;
    if (cands.length === 0) {
      this.cancelAttempt(p);
      this.goRelay(p, `direct impossible: ${blocked}`);
      this.scheduleRetry(p);
      return;
    }
    this.begin(p, cands, why);
  }

  private begin(p: Pair, cands: Candidate[], why: string): void {
    this.cancelAttempt(p);
    p.lastAttemptAt = this.now();
    const fromRelay = p.path.via === 'relay' && p.grant !== null && this.deps.relayAlive(p.grant);
    this.deps.log.info({ pair: [this.name(p.a), this.name(p.b)], why, candidates: cands.map((c) => c.kind.id) }, 'direct attempt');
    this.apply(p, startAttempt(cands, { seq: p.seq + 1, fromRelay, names: { a: this.name(p.a), b: this.name(p.b) }, now: this.now() }, this.t));
  }

  private input(p: Pair, input: AttemptInput): void {
    if (!p.attempt) return;
    this.apply(p, advance(p.attempt, input, { now: this.now(), nextSeq: p.seq + 1 }, this.t));
  }

  /** Carries out what the attempt machine decided. */
  private apply(p: Pair, step: Step): void {
    p.attempt = step.attempt;
    if (step.attempt) p.seq = Math.max(p.seq, step.attempt.seq);
    for (const o of step.out) {
      switch (o.type) {
        case 'prepare': {
          // The relay keeps carrying the pair meanwhile, if it was on one and still is.
          const relay = p.attempt?.fromRelay && p.grant ? p.grant : null;
          const base = { type: 'path', step: 'prepare', seq: o.seq, windowMs: o.windowMs, holdMs: o.holdMs } as const;
          const v = this.views(p);
          // A kind may need one side to send first (a mapped port: the side that is not mapped).
          const byKind = o.candidate.kind.initiator?.(v.a, v.b) ?? null;
          const first = byKind === null ? initiatorOf(v.a, v.b, p.failures) : byKind === 'x' ? 'a' : 'b';
          const open = (n: NodeView) => (o.candidate.kind.crossesNat && opensFirst(n) ? { openFirst: true } : {});
          this.deps.send(p.a, { ...base, publicKey: p.b, candidate: { kind: o.candidate.kind.id, endpoint: o.candidate.forX }, fallback: relay && { endpoint: relay.forA, relayId: relay.relayId }, initiates: first === 'a', ...open(v.a) });
          this.deps.send(p.b, { ...base, publicKey: p.a, candidate: { kind: o.candidate.kind.id, endpoint: o.candidate.forY }, fallback: relay && { endpoint: relay.forB, relayId: relay.relayId }, initiates: first === 'b', ...open(v.b) });
          break;
        }
        case 'punch':
          this.deps.send(p.a, { type: 'path', step: 'punch', seq: o.seq, publicKey: p.b });
          this.deps.send(p.b, { type: 'path', step: 'punch', seq: o.seq, publicKey: p.a });
          break;
        case 'arm': {
          const { timer, seq } = o;
          p.timers.arm(`attempt:${timer}`, o.ms, () => this.input(p, { type: 'timer', timer, seq }));
          break;
        }
        case 'disarm':
          p.timers.disarm(`attempt:${o.timer}`);
          break;
        case 'succeeded':
          this.succeeded(p, o.candidate, o.heard, o.afterMs, o.opened);
          break;
        case 'exhausted':
          this.failed(p, o.why, o.tried);
          break;
        case 'candidate-failed':
          this.deps.nat.candidateFailed(p.a, p.b, o.candidate, o);
          break;
      }
    }
  }

  private succeeded(p: Pair, c: Candidate, heard: Sides<Endpoint>, afterMs: number, opened: Sides<boolean>): void {
    if (c.kind.crossesNat) {
      // Each side saw the other at some address: that is a second observer of its NAT's mapping.
      // A side that did not open its NAT first may have had the peer's packet arrive at its
      // router before its own left: a leaky router then gave it another port (nat-knowledge.ts).
      this.deps.nat.observedBy(p.a, heard.b, { kind: 'peer', name: this.name(p.b), peerFirst: !opened.a });
      this.deps.nat.observedBy(p.b, heard.a, { kind: 'peer', name: this.name(p.a), peerFirst: !opened.b });
      this.deps.nat.attemptEnded(p.a, p.b, true);
    }
    p.allocating = null;
    p.directAfterMs = afterMs;
    this.firstPath(p);
    p.directSince = this.now();
    this.deps.nat.candidateWorked(p.a, p.b, c);
    // heard.a is where a heard b from: where a now sends.
    this.commit(p, { via: 'direct', kind: c.kind, endpoints: heard, seq: 0 }, `direct (${c.kind.name})`);
    this.sendDirect(p);
  }

  private failed(p: Pair, why: string, tried: readonly Candidate[]): void {
    if (tried.some((c) => c.kind.crossesNat)) this.deps.nat.attemptEnded(p.a, p.b, false);
    if (p.directSince !== null && this.now() - p.directSince >= this.t.stableMs) {
      p.failures = 0;
      p.unstable = 0;
    }
    p.failures++;
    if (p.path.via === 'relay' && p.grant && this.deps.relayAlive(p.grant)) {
      // The relay kept carrying the pair while we tried: just make sure both point at it again.
      p.reason = `direct failed: ${why}`;
      this.sendRelay(p);
    } else {
      this.goRelay(p, `direct failed: ${why}`);
    }
    this.scheduleRetry(p);
  }

  private scheduleRetry(p: Pair): void {
    const { viable, bothSeen } = this.viable(p);
    const hopeless = bothSeen && viable.length === 0;
    const v = this.views(p);
    const leaky = v.a.nat.leaky === 'yes' || v.b.nat.leaky === 'yes';
    const backoff = Math.min(this.t.backoffCapMs, this.t.backoffBaseMs * 2 ** Math.max(0, p.failures - 1));
    const spacing = hopeless || p.unstable >= 2 ? this.t.slowRetryMs : leaky && p.path.via !== 'direct' ? Math.max(backoff, this.t.leakyRetryMs) : backoff;
    const delay = Math.max(this.t.backoffBaseMs / 4, (p.lastAttemptAt || this.now()) + spacing - this.now());
    p.retryAt = this.now() + delay;
    p.timers.arm('retry', delay, () => {
      p.retryAt = null;
      if (p.path.via !== 'direct' && !p.attempt) this.evaluate(p, 'retry', true);
    });
  }

  private goRelay(p: Pair, why: string): void {
    const token = ++this.tokens;
    p.allocating = token;
    const reuse = p.grant && this.deps.relayAlive(p.grant) ? p.grant : undefined;
    const next = reuse ? Promise.resolve(reuse) : this.deps.allocateRelay(p.a, p.b);
    void next
      .then((grant) => {
        if (p.allocating !== token || !this.pairs.has(p.id)) {
          // Superseded while the relay answered: give the allocation back.
          if (grant && grant !== reuse) this.deps.releaseRelay(grant);
          return;
        }
        p.allocating = null;
        if (!grant) {
          p.grant = null;
          this.commit(p, { via: 'no-path' }, `${why}; no relay available`);
          this.retryRelay(p, why);
          return;
        }
        p.allocationFailures = 0;
        const fresh = grant.relayId !== p.grant?.relayId;
        const was = p.path;
        p.grant = grant;
        this.commit(p, { via: 'relay', seq: was.via === 'relay' ? was.seq : -1, ok: was.via === 'relay' && !fresh ? was.ok : { a: false, b: false } }, why);
        // An attempt under way ends with the pair pointed at the relay if it fails.
        if (!p.attempt) this.sendRelay(p);
      })
      .catch((err: unknown) => {
        if (p.allocating !== token) return;
        p.allocating = null;
        this.deps.log.warn({ err, pair: [this.name(p.a), this.name(p.b)] }, 'relay allocation failed');
        this.commit(p, { via: 'no-path' }, `${why}; relay allocation failed`);
        this.retryRelay(p, why);
      });
  }

  /**
   * No relay took the pair (none registered yet, all full, one that did not answer): ask again
   * with the pair's usual backoff, 1 s doubling to 8 s, never giving up. A direct retry scheduled
   * meanwhile still runs; whichever works first wins.
   */
  private retryRelay(p: Pair, why: string): void {
    const delay = Math.min(this.t.backoffCapMs, this.t.backoffBaseMs * 2 ** p.allocationFailures++);
    p.timers.arm('relay-retry', delay, () => {
      if (p.path.via === 'no-path' && !p.attempt && p.allocating === null) this.goRelay(p, why);
    });
  }

  private sendRelay(p: Pair): void {
    const r = p.grant!;
    const path = p.path.via === 'relay' ? p.path : { via: 'relay' as const, seq: -1, ok: { a: false, b: false } };
    p.path = path;
    const seq = ++p.seq;
    path.seq = seq;
    const v = this.views(p);
    // A side on the stream opens its side of the allocation on its shim (agent/paths/relay.ts):
    // on the hub's stream, or with its ticket on the relay's own.
    const over = (n: NodeView, stream: StreamGrant | undefined) => (tcpRelay.onStream(n) ? { kind: TCP_RELAY_ID, ...(stream ? { stream } : {}) } : {});
    const named = r.relay ? { relay: r.relay } : {};
    this.deps.send(p.a, { type: 'path', step: 'use', seq, publicKey: p.b, path: { via: 'relay', endpoint: r.forA, relayId: r.relayId, ...named, ...over(v.a, r.streamA) } });
    this.deps.send(p.b, { type: 'path', step: 'use', seq, publicKey: p.a, path: { via: 'relay', endpoint: r.forB, relayId: r.relayId, ...named, ...over(v.b, r.streamB) } });
    p.timers.disarm('relay-confirm');
    if (path.ok.a && path.ok.b) return;
    p.timers.arm('relay-confirm', this.t.relayConfirmMs, () => {
      if (p.path !== path || path.seq !== seq || (path.ok.a && path.ok.b)) return;
      // Nothing came through: a fresh allocation makes both sides handshake again.
      if (++p.relayTries > 3) {
        this.commit(p, { via: 'no-path' }, 'the relay carried nothing after 3 allocations');
        this.scheduleRetry(p);
        return;
      }
      this.dropRelay(p);
      this.goRelay(p, p.reason ?? 'relay');
    });
  }

  private sendDirect(p: Pair): void {
    const path = p.path;
    if (path.via !== 'direct') return;
    const seq = ++p.seq;
    path.seq = seq;
    for (const side of SIDES) {
      const [self, peer] = side === 'a' ? [p.a, p.b] : [p.b, p.a];
      this.deps.send(self, { type: 'path', step: 'use', seq, publicKey: peer, path: { via: 'direct', kind: path.kind.id, endpoint: path.endpoints[side] } });
    }
  }

  private sendHub(p: Pair): void {
    const seq = ++p.seq;
    this.deps.send(p.a, { type: 'path', step: 'use', seq, publicKey: p.b, path: { via: 'hub' } });
    this.deps.send(p.b, { type: 'path', step: 'use', seq, publicKey: p.a, path: { via: 'hub' } });
  }

  /** Commits the pair to `path`; the history records changes of mode only. */
  private commit(p: Pair, path: PairPath, reason: string): void {
    p.reason = reason;
    const changed = p.path.via !== path.via;
    p.path = path;
    if (!changed) return;
    p.since = this.now();
    if (path.via !== 'direct') p.directSince = null;
    p.history.push({ mode: path.via, at: p.since, reason });
    if (p.history.length > 50) p.history.shift();
    this.deps.log.info({ pair: [this.name(p.a), this.name(p.b)], mode: path.via, reason }, 'pair path');
  }

  private dropRelay(p: Pair): void {
    if (p.grant) this.deps.releaseRelay(p.grant);
    p.grant = null;
  }

  private cancelAttempt(p: Pair): void {
    if (!p.attempt) return;
    for (const t of ['ready', 'verdict', 'late'] as const) p.timers.disarm(`attempt:${t}`);
    p.attempt = null;
  }
}

/** The families a node can be reached over, in words, for a reason: "a: IPv4". */
function describe(n: NodeView): string {
  const families = [n.seen?.family === 4 ? 'IPv4' : null, n.seen?.family === 6 || n.interfaces.some((i) => i.family === 6 && i.address.isPublic()) ? 'IPv6' : null].filter(Boolean);
  return `${n.name}: ${families.join(' and ') || 'no address seen'}`;
}

/** The relay's address a pair's packets go to: one, or one per family when it bridges them. */
function relayVia(g: RelayGrant | null): string | null {
  if (!g) return null;
  return g.forA.address.equals(g.forB.address) ? g.forA.address.toString() : `${g.forA.address} and ${g.forB.address}`;
}
