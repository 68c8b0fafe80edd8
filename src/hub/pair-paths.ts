import type { Logger } from '../core/log.js';
import type { PathCommand, PathEvent, PeerReport } from '../core/protocol.js';
import { candidates, hopeless, learnFromAttempt, seenElsewhere, type Candidate, type NatFacts } from './nat-facts.js';

/**
 * Chooses the path of every agent pair, continuously: direct where hole punching works, the
 * relay where it cannot, back to direct when it can again.
 *
 * - An attempt is coordinated in two steps. Both agents first get ready (re-add the peer, point
 *   it at the candidate) without sending; once both said so, both are told to punch, so both
 *   NATs open for each other (lab links have no delay, so a peer's packet often arrives before our
 *   own left: the first punch may be dropped, the second side's gets in). The ready step is what
 *   makes that safe: measured in the NAT matrix under CPU load, an agent 60 ms ahead of its peer
 *   punched into a peer entry that was about to be re-added, or whose endpoint was about to be
 *   overwritten with the port a symmetric NAT filters, and 2 in 10 runs lost the attempt.
 *   Success is WireGuard itself authenticating the peer's packets from the direct address, on
 *   both sides; failure is known when the window passes without that.
 * - What the hub knows about each NAT (nat-facts.ts) skips attempts that cannot work.
 * - A failed pair goes to the relay and retries direct with backoff, at once when either side's
 *   network changes. Retries from the relay only borrow the path for a hole punch (holdMs), so a
 *   retry that fails costs a few packets, not the tunnel.
 * - It switches only on evidence: to direct when both sides saw the peer's packets directly, away
 *   from a working path only when it is reported lost. A pair that keeps losing its direct path
 *   soon after getting it backs off for minutes instead of flapping.
 */

export interface PairNode {
  key: string;
  name: string;
  proxied: boolean;
}

export interface RelayGrant {
  relayId: string;
  /** Where side a sends to reach b through the relay, and b to reach a. */
  forA: string;
  forB: string;
}

export interface PairDeps {
  node(key: string): PairNode | undefined;
  connected(key: string): boolean;
  send(key: string, cmd: PathCommand): void;
  facts(key: string): NatFacts;
  setFacts(key: string, f: NatFacts): void;
  allocateRelay(a: string, b: string): Promise<RelayGrant | undefined>;
  relayAlive(grant: RelayGrant): boolean;
  releaseRelay(grant: RelayGrant): void;
  log: Logger;
  now?: () => number;
}

export interface PairTimings {
  /** Direct attempt on the public addresses: the "failure known within about 2 s"; a lab handshake takes ~20 ms. */
  windowMs: number;
  /** LAN candidates answer within a millisecond or not at all. */
  lanWindowMs: number;
  /** Retries from the relay point at the direct address only long enough to send the punch (wireguard-go sends it within ~5 ms). */
  holdMs: number;
  /**
   * How long a late answer may still come. A candidate fails when both agents' windows ended
   * without hearing the other; when only one side heard, the other gets this much more. If an
   * agent says nothing, the hub gives up 2 windows + this after the punch: an agent that was busy
   * (starting, adding its peers) starts its window late, and its punch still counts. An agent
   * that is not ready within a window + this fails the candidate.
   */
  graceMs: number;
  backoffBaseMs: number;
  /** Retry cap while a pair's NATs look compatible: a retry costs one punch, so retry often. */
  backoffCapMs: number;
  /** Retry interval for pairs that cannot go direct as far as the hub knows, or keep losing it. */
  slowRetryMs: number;
  /** A direct path that lasted this long counts as stable: the pair's failure count starts over. */
  stableMs: number;
  relayConfirmMs: number;
}

export const DEFAULT_TIMINGS: PairTimings = {
  windowMs: 2000,
  lanWindowMs: 600,
  holdMs: 50,
  graceMs: 400,
  backoffBaseMs: 1000,
  backoffCapMs: 8000,
  slowRetryMs: 300_000,
  stableMs: 60_000,
  relayConfirmMs: 5000,
};

export type PairMode = 'waiting' | 'direct' | 'relay' | 'hub' | 'no-path';

interface Attempt {
  seq: number;
  candidates: Candidate[];
  index: number;
  startedAt: number;
  fromRelay: boolean;
  /** Sides that said ready; the punch went out when both had. */
  ready: { a: boolean; b: boolean };
  seen: { a: string | null; b: string | null };
  /** Sides whose window ended without hearing the other; a late answer still counts until the verdict. */
  failed: { a: boolean; b: boolean };
  timer?: NodeJS.Timeout;
  /** Runs once both sides reported but only one heard the other: the other may still hear a punch. */
  lateTimer?: NodeJS.Timeout;
}

interface Pair {
  id: string;
  a: string;
  b: string;
  mode: PairMode;
  seq: number;
  attempt?: Attempt;
  relay?: RelayGrant;
  relaySeq: number;
  relayOk: { a: boolean; b: boolean };
  relayTries: number;
  relayTimer?: NodeJS.Timeout;
  direct?: { a: string; b: string; kind: Candidate['kind'] };
  failures: number;
  unstable: number;
  directSince: number | null;
  retryTimer?: NodeJS.Timeout;
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
  /** Serialises async relay allocation with everything else that changes the pair. */
  epoch: number;
}

export interface PairStatus {
  a: string;
  b: string;
  mode: PairMode;
  /** The path both sides confirmed: relay counts only once traffic came through it on both sides. */
  confirmed: boolean;
  attempting: boolean;
  via: string | null;
  /** The pair's relay allocation, while it has one (for its counters). */
  relayId: string | null;
  sinceMs: number;
  directAfterMs: number | null;
  firstPathMs: number | null;
  failures: number;
  nextRetryInMs: number | null;
  reason: string | null;
  history: { mode: PairMode; agoMs: number; reason: string | null }[];
}

const pairId = (x: string, y: string) => (x < y ? `${x}|${y}` : `${y}|${x}`);

export class PairPaths {
  private pairs = new Map<string, Pair>();
  private byNode = new Map<string, Set<Pair>>();
  /** The last report of each agent about each peer, for rebuilding state after a hub restart. */
  private reports = new Map<string, Map<string, PeerReport>>();
  private readonly t: PairTimings;
  private readonly now: () => number;

  constructor(
    private readonly deps: PairDeps,
    timings: Partial<PairTimings> = {},
  ) {
    this.t = { ...DEFAULT_TIMINGS, ...timings };
    this.now = deps.now ?? Date.now;
  }

  /** The pairs that should exist: agents sharing a group. Pairs that went away are dropped. */
  sync(wanted: [string, string][]): void {
    const ids = new Set<string>();
    for (const [x, y] of wanted) {
      const id = pairId(x, y);
      ids.add(id);
      if (this.pairs.has(id)) continue;
      const [a, b] = x < y ? [x, y] : [y, x];
      const p: Pair = { id, a, b, mode: 'waiting', seq: 0, relaySeq: -1, relayOk: { a: false, b: false }, relayTries: 0, failures: 0, unstable: 0, directSince: null, retryAt: null, lastAttemptAt: 0, reason: null, since: this.now(), directAfterMs: null, readyAt: null, firstPathMs: null, history: [], epoch: 0 };
      this.pairs.set(id, p);
      for (const k of [a, b]) {
        if (!this.byNode.has(k)) this.byNode.set(k, new Set());
        this.byNode.get(k)!.add(p);
      }
      this.evaluate(p, 'new pair');
    }
    for (const p of [...this.pairs.values()]) {
      if (ids.has(p.id)) continue;
      this.clearTimers(p);
      this.dropRelay(p);
      p.epoch++;
      this.pairs.delete(p.id);
      this.byNode.get(p.a)?.delete(p);
      this.byNode.get(p.b)?.delete(p);
    }
  }

  /** An agent (re)connected and said what its device does for each peer. */
  connected(key: string, peers: PeerReport[]): void {
    this.reports.set(key, new Map(peers.map((r) => [r.publicKey, r])));
    for (const p of this.byNode.get(key) ?? []) {
      if (!this.bothConnected(p)) continue;
      if (p.mode === 'waiting') this.adopt(p);
      else this.resend(p);
    }
  }

  disconnected(key: string): void {
    this.reports.delete(key);
    for (const p of this.byNode.get(key) ?? []) {
      if (p.attempt) {
        stopTimers(p.attempt);
        p.attempt = undefined;
      }
      clearTimeout(p.relayTimer);
    }
  }

  /** The node's public endpoint or network changed: its pairs try again now, backoff forgotten. */
  changed(key: string, why: string): void {
    for (const p of this.byNode.get(key) ?? []) {
      p.failures = 0;
      this.evaluate(p, why);
    }
  }

  /** A node chose or left proxied mode, or anything else that changes every pair of it. */
  reevaluate(key: string, why: string): void {
    for (const p of this.byNode.get(key) ?? []) this.evaluate(p, why);
  }

  relayGone(grantRelayId: string): void {
    for (const p of this.pairs.values()) {
      if (p.relay?.relayId !== grantRelayId) continue;
      p.relay = undefined;
      if (p.mode === 'relay') this.goRelay(p, 'the relay allocation went away');
    }
  }

  onEvent(key: string, ev: PathEvent): void {
    const p = this.pairs.get(pairId(key, ev.publicKey));
    if (!p) return;
    const side = key === p.a ? 'a' : 'b';
    const at = p.attempt;
    this.deps.log.debug({ pair: [this.name(p.a), this.name(p.b)], from: this.name(key), event: ev.event, seq: ev.seq, attemptSeq: at?.seq ?? null, endpoint: ev.endpoint, afterMs: ev.afterMs }, 'path event');
    switch (ev.event) {
      case 'ready':
        if (at && ev.seq === at.seq && !(at.ready.a && at.ready.b)) {
          at.ready[side] = true;
          if (at.ready.a && at.ready.b) this.sendPunch(p);
        }
        return;
      case 'direct-rx':
        if (at && ev.seq === at.seq) {
          at.seen[side] = ev.endpoint ?? 'unknown';
          at.failed[side] = false;
          this.weigh(p, at);
        } else if (!at && p.mode === 'relay' && ev.seq === p.relaySeq) {
          // The peer reached us directly while we are relayed (its NAT opened on its own): try now.
          this.evaluate(p, `${this.name(key)} heard ${this.name(ev.publicKey)} directly`, true);
        }
        return;
      case 'failed':
        if (at && ev.seq === at.seq) {
          at.failed[side] = true;
          this.weigh(p, at);
        }
        return;
      case 'relay-ok':
        if (p.mode === 'relay' && ev.seq === p.relaySeq) {
          p.relayOk[side] = true;
          if (p.relayOk.a && p.relayOk.b) {
            clearTimeout(p.relayTimer);
            p.relayTries = 0;
            this.firstPath(p);
          }
        }
        return;
      case 'lost':
        if (p.mode === 'direct' && ev.seq === p.seq && !at) {
          if (p.directSince !== null && this.now() - p.directSince < this.t.stableMs) p.unstable++;
          p.failures++;
          this.goRelay(p, `the direct path went silent (reported by ${this.name(key)})`);
          this.scheduleRetry(p);
        } else if (p.mode === 'relay' && ev.seq === p.relaySeq && !at) {
          this.dropRelay(p);
          this.goRelay(p, `the relay path went silent (reported by ${this.name(key)})`);
        }
        return;
    }
  }

  status(): PairStatus[] {
    const now = this.now();
    return [...this.pairs.values()].map((p) => ({
      a: this.name(p.a),
      b: this.name(p.b),
      mode: p.mode,
      confirmed: p.mode === 'direct' || p.mode === 'hub' || (p.mode === 'relay' && p.relayOk.a && p.relayOk.b),
      attempting: p.attempt !== undefined,
      via: p.mode === 'relay' ? (p.relay?.forA.replace(/:\d+$/, '') ?? null) : p.mode === 'direct' ? (p.direct?.kind ?? null) : null,
      relayId: p.relay?.relayId ?? null,
      sinceMs: now - p.since,
      directAfterMs: p.directAfterMs,
      firstPathMs: p.firstPathMs,
      failures: p.failures,
      nextRetryInMs: p.retryAt === null ? null : Math.max(0, p.retryAt - now),
      reason: p.reason,
      history: p.history.map((h) => ({ mode: h.mode, agoMs: now - h.at, reason: h.reason })),
    }));
  }

  close(): void {
    for (const p of this.pairs.values()) this.clearTimers(p);
  }

  // ---- decisions ------------------------------------------------------------------------------

  private name(key: string): string {
    return this.deps.node(key)?.name ?? key.slice(0, 8);
  }

  private bothConnected(p: Pair): boolean {
    return this.deps.connected(p.a) && this.deps.connected(p.b);
  }

  /**
   * After a hub restart: pairs whose agents both still go direct (a recent handshake on a
   * non-relay endpoint) stay direct without an attempt; everything else is decided afresh.
   */
  private adopt(p: Pair): void {
    const ra = this.reports.get(p.a)?.get(p.b);
    const rb = this.reports.get(p.b)?.get(p.a);
    const live = (r?: PeerReport) => r?.path === 'direct' && r.endpoint !== null && r.handshakeAgeMs !== null && r.handshakeAgeMs < 150_000;
    if (live(ra) && live(rb)) {
      p.direct = { a: ra!.endpoint!, b: rb!.endpoint!, kind: 'public' };
      p.directSince = this.now();
      this.setMode(p, 'direct', 'still direct (adopted after the hub restarted)');
      this.sendDirect(p);
      return;
    }
    this.evaluate(p, 'both agents connected');
  }

  /** An agent reconnected to a hub that kept running: tell it again what the pair does. */
  private resend(p: Pair): void {
    if (p.attempt) return;
    if (p.mode === 'direct') this.sendDirect(p);
    else if (p.mode === 'relay' && p.relay) this.sendRelay(p);
    else if (p.mode === 'hub') this.sendHub(p);
    else this.evaluate(p, 'agent reconnected');
  }

  private firstPath(p: Pair): void {
    if (p.firstPathMs === null && p.readyAt !== null) p.firstPathMs = this.now() - p.readyAt;
  }

  private evaluate(p: Pair, why: string, force = false): void {
    clearTimeout(p.retryTimer);
    p.retryAt = null;
    if (!this.bothConnected(p)) return;
    p.readyAt ??= this.now();
    const a = this.deps.node(p.a);
    const b = this.deps.node(p.b);
    if (!a || !b) return;
    if (a.proxied || b.proxied) {
      this.cancelAttempt(p);
      this.setMode(p, 'hub', `${a.proxied ? a.name : b.name} chose proxied mode: through the hub`);
      this.sendHub(p);
      return;
    }
    const fa = this.deps.facts(p.a);
    const fb = this.deps.facts(p.b);
    let cands = candidates(fa, fb);
    if (cands.length === 0) return; // an endpoint is not known yet: the poll that sees it calls changed()
    const noHope = hopeless(fa, fb, a.name, b.name);
    if (noHope && !force) {
      // LAN paths do not cross either NAT: still worth a try behind one router.
      cands = cands.filter((c) => c.kind === 'lan');
      if (cands.length === 0) {
        this.cancelAttempt(p);
        this.goRelay(p, `direct impossible: ${noHope}`);
        this.scheduleRetry(p);
        return;
      }
    }
    this.startAttempt(p, cands, why);
  }

  private startAttempt(p: Pair, cands: Candidate[], why: string): void {
    this.cancelAttempt(p);
    p.lastAttemptAt = this.now();
    p.attempt = { seq: 0, candidates: cands, index: 0, startedAt: this.now(), fromRelay: p.mode === 'relay' && p.relay !== undefined && this.deps.relayAlive(p.relay), ready: { a: false, b: false }, seen: { a: null, b: null }, failed: { a: false, b: false } };
    this.deps.log.info({ pair: [this.name(p.a), this.name(p.b)], why, candidates: cands.map((c) => c.kind) }, 'direct attempt');
    this.sendAttempt(p);
  }

  /** Both agents get ready for the candidate; the punch follows when both said so. */
  private sendAttempt(p: Pair): void {
    const at = p.attempt!;
    at.seq = ++p.seq;
    at.ready = { a: false, b: false };
    at.seen = { a: null, b: null };
    at.failed = { a: false, b: false };
    stopTimers(at);
    at.startedAt = this.now();
    this.sendAttemptStep(p, 'attempt');
    const seq = at.seq;
    const { windowMs } = this.attemptTimes(p);
    at.timer = setTimeout(() => {
      if (p.attempt?.seq !== seq) return;
      const slow = [at.ready.a ? null : p.a, at.ready.b ? null : p.b].filter((k) => k !== null).map((k) => this.name(k));
      this.attemptFailed(p, `${slow.join(' and ')} did not get ready for the attempt within ${windowMs + this.t.graceMs} ms`);
    }, windowMs + this.t.graceMs);
  }

  private sendPunch(p: Pair): void {
    const at = p.attempt!;
    clearTimeout(at.timer);
    // Both at the same moment: neither side's punch should wait for the other's.
    this.sendAttemptStep(p, 'punch');
    const seq = at.seq;
    const { windowMs, kind } = this.attemptTimes(p);
    at.timer = setTimeout(() => {
      if (p.attempt?.seq === seq) this.attemptFailed(p, `no answer on ${kind === 'lan' ? 'the LAN' : 'the direct path'} within ${windowMs} ms`);
    }, 2 * windowMs + this.t.graceMs);
  }

  private attemptTimes(p: Pair): { windowMs: number; holdMs: number; kind: Candidate['kind'] } {
    const at = p.attempt!;
    const { kind } = at.candidates[at.index];
    const windowMs = kind === 'lan' ? this.t.lanWindowMs : this.t.windowMs;
    return { windowMs, holdMs: at.fromRelay ? Math.min(this.t.holdMs, windowMs) : windowMs, kind };
  }

  private sendAttemptStep(p: Pair, mode: 'attempt' | 'punch'): void {
    const at = p.attempt!;
    const c = at.candidates[at.index];
    const { windowMs, holdMs } = this.attemptTimes(p);
    const relay = at.fromRelay ? p.relay : undefined;
    const base = { type: 'path', seq: at.seq, mode, relayId: relay?.relayId ?? null, windowMs, holdMs } as const;
    this.deps.send(p.a, { ...base, publicKey: p.b, endpoint: c.forX, relay: relay?.forA ?? null });
    this.deps.send(p.b, { ...base, publicKey: p.a, endpoint: c.forY, relay: relay?.forB ?? null });
  }

  /**
   * The verdict on the current candidate from what both sides said. A side whose window ended may
   * have heard nothing only because the other started late (its agent was busy): so the candidate
   * fails when neither heard the other, or when one did and the other still has not after a grace.
   */
  private weigh(p: Pair, at: Attempt): void {
    if (at.seen.a && at.seen.b) return this.commitDirect(p);
    const deaf = at.failed.a ? 'a' : at.failed.b ? 'b' : null;
    if (!deaf) return;
    const [x, y] = deaf === 'a' ? [p.a, p.b] : [p.b, p.a];
    const why = `${this.name(x)} heard nothing from ${this.name(y)} on ${at.candidates[at.index].kind === 'lan' ? 'the LAN' : 'the direct path'}`;
    if (at.failed.a && at.failed.b) return this.attemptFailed(p, why);
    if (!at.seen.a && !at.seen.b) return;
    const seq = at.seq;
    clearTimeout(at.lateTimer);
    at.lateTimer = setTimeout(() => {
      if (p.attempt?.seq === seq) this.attemptFailed(p, why);
    }, this.t.graceMs);
  }

  private commitDirect(p: Pair): void {
    const at = p.attempt!;
    stopTimers(at);
    const c = at.candidates[at.index];
    p.attempt = undefined;
    if (c.kind === 'public') {
      // Each side saw the other at some address: that is a second observer of its NAT's mapping.
      const fa = seenElsewhere(this.deps.facts(p.a), at.seen.b!, `peer ${this.name(p.b)}`);
      const fb = seenElsewhere(this.deps.facts(p.b), at.seen.a!, `peer ${this.name(p.a)}`);
      const learned = learnFromAttempt(fa, fb, true);
      this.deps.setFacts(p.a, learned.x);
      this.deps.setFacts(p.b, learned.y);
    }
    p.direct = { a: at.seen.a!, b: at.seen.b!, kind: c.kind };
    p.directAfterMs = this.now() - at.startedAt;
    this.firstPath(p);
    p.directSince = this.now();
    this.setMode(p, 'direct', c.kind === 'lan' ? 'direct on the LAN' : 'direct');
    this.sendDirect(p);
  }

  private attemptFailed(p: Pair, why: string): void {
    const at = p.attempt;
    if (!at) return;
    stopTimers(at);
    if (at.index + 1 < at.candidates.length) {
      at.index++;
      this.sendAttempt(p);
      return;
    }
    p.attempt = undefined;
    if (at.candidates.some((c) => c.kind === 'public')) {
      const learned = learnFromAttempt(this.deps.facts(p.a), this.deps.facts(p.b), false);
      this.deps.setFacts(p.a, learned.x);
      this.deps.setFacts(p.b, learned.y);
    }
    if (p.directSince !== null && this.now() - p.directSince >= this.t.stableMs) {
      p.failures = 0;
      p.unstable = 0;
    }
    p.failures++;
    if (p.mode === 'relay' && p.relay && this.deps.relayAlive(p.relay)) {
      // The relay kept carrying the pair while we tried: just make sure both point at it again.
      p.reason = `direct failed: ${why}`;
      this.sendRelay(p);
    } else {
      this.goRelay(p, `direct failed: ${why}`);
    }
    this.scheduleRetry(p);
  }

  private scheduleRetry(p: Pair): void {
    clearTimeout(p.retryTimer);
    const a = this.deps.node(p.a);
    const b = this.deps.node(p.b);
    const noHope = a && b ? hopeless(this.deps.facts(p.a), this.deps.facts(p.b), a.name, b.name) : null;
    const spacing = noHope || p.unstable >= 2 ? this.t.slowRetryMs : Math.min(this.t.backoffCapMs, this.t.backoffBaseMs * 2 ** Math.max(0, p.failures - 1));
    const delay = Math.max(this.t.backoffBaseMs / 4, (p.lastAttemptAt || this.now()) + spacing - this.now());
    p.retryAt = this.now() + delay;
    p.retryTimer = setTimeout(() => {
      p.retryAt = null;
      // A scheduled retry tries even where the hub thinks it cannot work: what it knows may be stale.
      if (p.mode !== 'direct' && !p.attempt) this.evaluate(p, 'retry', true);
    }, delay);
  }

  private goRelay(p: Pair, why: string): void {
    const epoch = ++p.epoch;
    const reuse = p.relay && this.deps.relayAlive(p.relay) ? p.relay : undefined;
    const next = reuse ? Promise.resolve(reuse) : this.deps.allocateRelay(p.a, p.b);
    void next
      .then((grant) => {
        if (p.epoch !== epoch || !this.pairs.has(p.id)) {
          // Superseded while the relay answered: give the allocation back.
          if (grant && grant !== reuse) this.deps.releaseRelay(grant);
          return;
        }
        if (!grant) {
          p.relay = undefined;
          this.setMode(p, 'no-path', `${why}; no relay available`);
          return;
        }
        const fresh = grant.relayId !== p.relay?.relayId;
        p.relay = grant;
        if (fresh || p.mode !== 'relay') p.relayOk = { a: false, b: false };
        this.setMode(p, 'relay', why);
        this.sendRelay(p);
      })
      .catch((err: unknown) => {
        if (p.epoch !== epoch) return;
        this.deps.log.warn({ err, pair: [this.name(p.a), this.name(p.b)] }, 'relay allocation failed');
        this.setMode(p, 'no-path', `${why}; relay allocation failed`);
      });
  }

  private sendRelay(p: Pair): void {
    const r = p.relay!;
    p.relaySeq = ++p.seq;
    const base = { type: 'path', seq: p.relaySeq, mode: 'relay', endpoint: null, relayId: r.relayId, windowMs: 0, holdMs: 0 } as const;
    this.deps.send(p.a, { ...base, publicKey: p.b, relay: r.forA });
    this.deps.send(p.b, { ...base, publicKey: p.a, relay: r.forB });
    clearTimeout(p.relayTimer);
    if (p.relayOk.a && p.relayOk.b) return;
    const seq = p.relaySeq;
    p.relayTimer = setTimeout(() => {
      if (p.mode !== 'relay' || p.relaySeq !== seq || (p.relayOk.a && p.relayOk.b)) return;
      // Nothing came through: a fresh allocation makes both sides handshake again.
      if (++p.relayTries > 3) {
        this.setMode(p, 'no-path', 'the relay carried nothing after 3 allocations');
        this.scheduleRetry(p);
        return;
      }
      this.dropRelay(p);
      this.goRelay(p, p.reason ?? 'relay');
    }, this.t.relayConfirmMs);
  }

  private sendDirect(p: Pair): void {
    const d = p.direct!;
    const seq = ++p.seq;
    const base = { type: 'path', seq, mode: 'direct', relay: null, relayId: null, windowMs: 0, holdMs: 0 } as const;
    this.deps.send(p.a, { ...base, publicKey: p.b, endpoint: d.a });
    this.deps.send(p.b, { ...base, publicKey: p.a, endpoint: d.b });
  }

  private sendHub(p: Pair): void {
    const seq = ++p.seq;
    const base = { type: 'path', seq, mode: 'hub', endpoint: null, relay: null, relayId: null, windowMs: 0, holdMs: 0 } as const;
    this.deps.send(p.a, { ...base, publicKey: p.b });
    this.deps.send(p.b, { ...base, publicKey: p.a });
  }

  private setMode(p: Pair, mode: PairMode, reason: string): void {
    p.reason = reason;
    if (p.mode === mode) return;
    p.mode = mode;
    p.since = this.now();
    if (mode !== 'direct') p.directSince = null;
    p.history.push({ mode, at: p.since, reason });
    if (p.history.length > 50) p.history.shift();
    this.deps.log.info({ pair: [this.name(p.a), this.name(p.b)], mode, reason }, 'pair path');
  }

  private dropRelay(p: Pair): void {
    if (p.relay) this.deps.releaseRelay(p.relay);
    p.relay = undefined;
  }

  private cancelAttempt(p: Pair): void {
    if (!p.attempt) return;
    stopTimers(p.attempt);
    p.attempt = undefined;
  }

  private clearTimers(p: Pair): void {
    this.cancelAttempt(p);
    clearTimeout(p.retryTimer);
    clearTimeout(p.relayTimer);
  }
}

function stopTimers(at: Attempt): void {
  clearTimeout(at.timer);
  clearTimeout(at.lateTimer);
}
