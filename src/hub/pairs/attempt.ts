import type { Candidate } from '../../core/candidates/index.js';
import type { Endpoint } from '../../core/net/endpoint.js';

/**
 * One coordinated direct attempt of an agent pair, over its candidates in order, as an explicit
 * state machine: `advance` is a pure function of the attempt, one input and the time, returning
 * the next attempt (null once it ended) and what the coordinator must do. Timers are outputs
 * too (`arm`), and come back as inputs carrying the seq they were armed for, so a stale timer is
 * recognised here, in one place.
 *
 * Each candidate goes in two steps. Both agents first get ready (re-add the peer, point it at the
 * candidate) without sending; once both said so, both are told to punch at the same moment, so
 * both NATs open for each other. Lab links have no delay, so a peer's packet often arrives before
 * our own left: the first punch may be dropped, the second side's gets in. The ready step is what
 * makes that safe: measured in the NAT matrix under CPU load, an agent 60 ms ahead of its peer
 * punched into a peer entry about to be re-added, or whose endpoint was about to be overwritten
 * with a port a symmetric NAT filters, and 2 in 10 runs lost the attempt.
 *
 * Success is WireGuard itself authenticating the peer's packets on the candidate, on both sides.
 * A side whose window ended may have heard nothing only because the other started late (its
 * agent was busy), so a candidate fails when neither side heard the other, or when one did and
 * the other still has not after a grace; an agent that never answers is given up on after two
 * windows and a grace, one that is not ready within a window and a grace fails the candidate.
 */

export type Side = 'a' | 'b';
export interface Sides<T> {
  a: T;
  b: T;
}

export interface AttemptTimings {
  /** How long a late answer may still come (see above). */
  graceMs: number;
  /** Retries from the relay point at the direct address only long enough to send the punch (wireguard-go sends it within ~5 ms). */
  holdMs: number;
}

export type AttemptTimer = 'ready' | 'verdict' | 'late';

export interface Attempt {
  readonly phase: 'preparing' | 'punched';
  /** The seq of the current candidate's commands. */
  readonly seq: number;
  readonly candidates: readonly Candidate[];
  readonly index: number;
  /** The pair was on the relay when the attempt began: the relay carries its data meanwhile. */
  readonly fromRelay: boolean;
  readonly names: Sides<string>;
  /** When the current candidate's prepare went out. */
  readonly startedAt: number;
  readonly ready: Sides<boolean>;
  /** Sides that sent toward the candidate before saying ready: no packet of the peer's reached their NAT first. */
  readonly opened: Sides<boolean>;
  /** Where each side heard the other on the candidate. */
  readonly heard: Sides<Endpoint | null>;
  /** Sides whose window ended without hearing the other; a late answer still counts until the verdict. */
  readonly unheard: Sides<boolean>;
  /** Set while one side heard and the other's window ended: the verdict if the late timer fires. */
  readonly lateWhy: string | null;
}

export type AttemptInput =
  | { type: 'ready'; side: Side; seq: number; opened?: boolean }
  | { type: 'heard'; side: Side; seq: number; endpoint: Endpoint }
  | { type: 'unheard'; side: Side; seq: number }
  | { type: 'timer'; timer: AttemptTimer; seq: number };

export type AttemptOutput =
  | { type: 'prepare'; seq: number; candidate: Candidate; windowMs: number; holdMs: number }
  | { type: 'punch'; seq: number }
  /** One candidate failed (the attempt may go on with the next): who was ready, who heard the other. */
  | { type: 'candidate-failed'; candidate: Candidate; ready: Sides<boolean>; heard: Sides<boolean> }
  /** Replaces any timer of the same name. */
  | { type: 'arm'; timer: AttemptTimer; ms: number; seq: number }
  | { type: 'disarm'; timer: AttemptTimer }
  | { type: 'succeeded'; candidate: Candidate; heard: Sides<Endpoint>; afterMs: number; opened: Sides<boolean> }
  | { type: 'exhausted'; why: string; tried: readonly Candidate[] };

export interface Step {
  attempt: Attempt | null;
  out: AttemptOutput[];
}

export interface AttemptContext {
  now: number;
  /** The pair's next command number, should the attempt move to its next candidate. */
  nextSeq: number;
}

const other = (s: Side): Side => (s === 'a' ? 'b' : 'a');

export function windows(at: Pick<Attempt, 'candidates' | 'index' | 'fromRelay'>, t: AttemptTimings): { windowMs: number; holdMs: number } {
  const windowMs = at.candidates[at.index].kind.windowMs;
  return { windowMs, holdMs: at.fromRelay ? Math.min(t.holdMs, windowMs) : windowMs };
}

function prepare(base: Omit<Attempt, 'phase' | 'ready' | 'opened' | 'heard' | 'unheard' | 'lateWhy' | 'startedAt' | 'seq'>, seq: number, now: number, t: AttemptTimings): Step {
  const at: Attempt = { ...base, phase: 'preparing', seq, startedAt: now, ready: { a: false, b: false }, opened: { a: false, b: false }, heard: { a: null, b: null }, unheard: { a: false, b: false }, lateWhy: null };
  const { windowMs, holdMs } = windows(at, t);
  return {
    attempt: at,
    out: [
      { type: 'prepare', seq, candidate: at.candidates[at.index], windowMs, holdMs },
      { type: 'arm', timer: 'ready', ms: windowMs + t.graceMs, seq },
    ],
  };
}

export function startAttempt(candidates: readonly Candidate[], o: { seq: number; fromRelay: boolean; names: Sides<string>; now: number }, t: AttemptTimings): Step {
  if (candidates.length === 0) throw new Error('an attempt needs at least one candidate');
  return prepare({ candidates, index: 0, fromRelay: o.fromRelay, names: o.names }, o.seq, o.now, t);
}

/** The current candidate failed: the next one, or the end of the attempt. */
function fail(at: Attempt, why: string, ctx: AttemptContext, t: AttemptTimings): Step {
  const disarm: AttemptOutput[] = [
    { type: 'disarm', timer: 'ready' },
    { type: 'disarm', timer: 'verdict' },
    { type: 'disarm', timer: 'late' },
    { type: 'candidate-failed', candidate: at.candidates[at.index], ready: at.ready, heard: { a: at.heard.a !== null, b: at.heard.b !== null } },
  ];
  if (at.index + 1 < at.candidates.length) {
    const next = prepare({ ...at, index: at.index + 1 }, ctx.nextSeq, ctx.now, t);
    return { attempt: next.attempt, out: [...disarm, ...next.out] };
  }
  return { attempt: null, out: [...disarm, { type: 'exhausted', why, tried: at.candidates }] };
}

/** The verdict on the current candidate from what both sides said so far. */
function weigh(at: Attempt, ctx: AttemptContext, t: AttemptTimings): Step {
  const { heard, unheard } = at;
  const candidate = at.candidates[at.index];
  if (heard.a && heard.b) {
    return {
      attempt: null,
      out: [{ type: 'disarm', timer: 'ready' }, { type: 'disarm', timer: 'verdict' }, { type: 'disarm', timer: 'late' }, { type: 'succeeded', candidate, heard: { a: heard.a, b: heard.b }, afterMs: ctx.now - at.startedAt, opened: at.opened }],
    };
  }
  const deaf: Side | null = unheard.a ? 'a' : unheard.b ? 'b' : null;
  if (!deaf) return { attempt: at, out: [] };
  const why = `${at.names[deaf]} heard nothing from ${at.names[other(deaf)]} on ${candidate.kind.label}`;
  if (unheard.a && unheard.b) return fail(at, why, ctx, t);
  if (!heard.a && !heard.b) return { attempt: at, out: [] };
  // One side heard the other, whose window ended: a punch of the hearing side may still get through.
  return { attempt: { ...at, lateWhy: why }, out: [{ type: 'arm', timer: 'late', ms: t.graceMs, seq: at.seq }] };
}

export function advance(at: Attempt, input: AttemptInput, ctx: AttemptContext, t: AttemptTimings): Step {
  const unchanged: Step = { attempt: at, out: [] };
  if (input.seq !== at.seq) return unchanged;
  const { windowMs } = windows(at, t);
  switch (input.type) {
    case 'ready': {
      if (at.phase !== 'preparing' || at.ready[input.side]) return unchanged;
      const ready = { ...at.ready, [input.side]: true };
      const opened = { ...at.opened, [input.side]: input.opened === true };
      if (!(ready.a && ready.b)) return { attempt: { ...at, ready, opened }, out: [] };
      // Both at the same moment: neither side's punch should wait for the other's.
      return {
        attempt: { ...at, ready, opened, phase: 'punched' },
        out: [
          { type: 'disarm', timer: 'ready' },
          { type: 'punch', seq: at.seq },
          { type: 'arm', timer: 'verdict', ms: 2 * windowMs + t.graceMs, seq: at.seq },
        ],
      };
    }
    case 'heard':
      return weigh({ ...at, heard: { ...at.heard, [input.side]: input.endpoint }, unheard: { ...at.unheard, [input.side]: false } }, ctx, t);
    case 'unheard':
      return weigh({ ...at, unheard: { ...at.unheard, [input.side]: true } }, ctx, t);
    case 'timer':
      switch (input.timer) {
        case 'ready': {
          if (at.phase !== 'preparing') return unchanged;
          const slow = (['a', 'b'] as const).filter((s) => !at.ready[s]).map((s) => at.names[s]);
          return fail(at, `${slow.join(' and ')} did not get ready for the attempt within ${windowMs + t.graceMs} ms`, ctx, t);
        }
        case 'verdict':
          if (at.phase !== 'punched') return unchanged;
          return fail(at, `no answer on ${at.candidates[at.index].kind.label} within ${windowMs} ms`, ctx, t);
        case 'late':
          return at.lateWhy === null ? unchanged : fail(at, at.lateWhy, ctx, t);
      }
  }
}
