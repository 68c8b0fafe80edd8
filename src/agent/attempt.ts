import type { CandidateKind } from '../core/candidates/index.js';
import type { Endpoint } from '../core/net/endpoint.js';
import type { PeerState } from '../core/wireguard/uapi.js';

/**
 * One side of a coordinated direct attempt, as an explicit state machine: `step` is a pure
 * function of the attempt, one input (a reading of the peer on the device, or the hub's punch)
 * and the time; it returns the next attempt (null once it is over) and what the agent must do
 * to the device and tell the hub.
 *
 * The evidence is WireGuard's own: it moves a peer's endpoint to the source address of every
 * packet it authenticates. So "rx grew and the endpoint is not the relay" means the peer's
 * packets reached us directly; the candidate's kind says whether that address proves it.
 *
 * Phases: ready (prepared, nothing sent, waiting for the hub's punch) -> punched (the window
 * runs) -> over (the window ended, waiting for the hub's verdict). A late answer still counts in
 * every phase: an agent that was busy starts its window late, and its punch still arrives.
 *
 * Roles, when the peer was re-added (no session, so the punch is a handshake initiation): one
 * side initiates, the other only answers. If both send an initiation and each one passes the
 * other's NAT (both opened it by sending), the two cross: each side takes the other's
 * initiation, which replaces its own handshake state, and answers it; each then refuses the
 * answer to its own initiation, and holds only a key that the peer must use first. Neither may
 * send until WireGuard's 5 s retransmit (REKEY_TIMEOUT). In the lab, where both initiations
 * meet only if they leave within a fraction of a millisecond, that was the join's slow tail
 * (6.3 and 6.7 s, about one join in 25; bench/crossing.ts: 1 of 20 simultaneous punches); with
 * ~110 ms between the routers, 16 of 20 crossed, so on real paths it would be the rule. The
 * responder therefore opens its NAT before it says ready with an initiation nobody can take
 * (mesh-peer.ts, a throwaway peer), keeps its real peer silent (no allowed IPs, so no traffic
 * makes WireGuard initiate), and sends only once the handshake completed; the initiator's one
 * initiation then always meets a NAT already open and a peer with nothing outstanding. `both`
 * is the behaviour without roles: a live session (punches are keepalives) or a hub that names
 * none.
 *
 * Roles from the relay (a live session): only for a kind whose responder must not open its NAT
 * (a mapped port). The responder keeps sending through the relay and answers as soon as the
 * initiator's packet arrives directly; no handshake is under way, so nothing can cross. With both
 * sides punching at once, the NAT matrix under load lost the race on several pairs of one run: the
 * mapped side's keepalive left first, took the conntrack tuple the peer's packet needed, and the
 * hub concluded that the mapping did not forward.
 */

/** Extra punches after evidence, so the peer also hears from us directly (a ping-pong of keepalives). */
const MAX_PUNCHES = 3;
/** If the hub does not answer (it went away), stop waiting for its punch or its verdict after this. */
export const VERDICT_TIMEOUT_MS = 10_000;

export type AttemptRole = 'both' | 'initiator' | 'responder';

export interface AgentAttempt {
  readonly phase: 'ready' | 'punched' | 'over';
  /** See the header: who sends the handshake initiation. */
  readonly role: AttemptRole;
  readonly seq: number;
  readonly kind: CandidateKind;
  /** Where the hub told us to send. */
  readonly candidate: Endpoint;
  /** The relay to go back to after the punch, when the pair is relayed. */
  readonly fallback: Endpoint | null;
  readonly windowMs: number;
  readonly holdMs: number;
  /** When we got ready; the window and the hold start at the punch. */
  readonly readyAt: number;
  /** When the device was pointed at the candidate (null: not yet, the relay still carries us): a handshake newer than this happened on it. */
  readonly pointedAt: number | null;
  readonly holdUntil: number | null;
  readonly windowEnd: number | null;
  /** Received bytes already accounted for: only what comes after can be evidence. Null: the next reading is the baseline. */
  readonly lastRx: number | null;
  /** Waiting for the reading after our punch from the relay; `rxBefore`: received bytes as the punch began. */
  readonly measuring: { rxBefore: number | null } | null;
  readonly evidence: Endpoint | null;
  readonly punches: number;
  /** The hold passed and the device points at the fallback again. */
  readonly restored: boolean;
}

export type AttemptInput =
  /** A fresh reading of the peer. `relay`: the relay the committed path uses, which is never evidence. */
  | { type: 'observe'; peer: PeerState | undefined; relay: Endpoint | null }
  /** The hub's punch, with a reading of the peer taken as it arrived. */
  | { type: 'punch'; peer: PeerState | undefined; relay: Endpoint | null }
  /** The reading taken right after our punch from the relay (asked for with `measure`). */
  | { type: 'measured'; peer: PeerState | undefined };

export type AttemptEffect =
  /** Make WireGuard send now (keepalive 0 -> K), pointing at `endpoint` first if given. */
  | { type: 'punch'; endpoint?: Endpoint }
  /** Point the device's peer at `endpoint`, sending nothing. */
  | { type: 'point'; endpoint: Endpoint }
  /** Read the peer again and feed it back as `measured`. */
  | { type: 'measure' }
  | { type: 'heard'; endpoint: Endpoint; afterMs: number }
  | { type: 'unheard'; reason: string }
  /** The hub never came back: keep what was committed. */
  | { type: 'abandon' };

export interface AttemptStep {
  attempt: AgentAttempt | null;
  effects: AttemptEffect[];
}

export function readyAttempt(o: { seq: number; kind: CandidateKind; candidate: Endpoint; fallback: Endpoint | null; windowMs: number; holdMs: number; now: number; baselineRx: number | null; role?: AttemptRole }): AgentAttempt {
  return {
    phase: 'ready',
    role: o.role ?? 'both',
    seq: o.seq,
    kind: o.kind,
    candidate: o.candidate,
    fallback: o.fallback,
    windowMs: o.windowMs,
    holdMs: o.holdMs,
    readyAt: o.now,
    // From the relay the device keeps pointing at the relay until the punch borrows the direct path.
    pointedAt: o.fallback ? null : o.now,
    holdUntil: null,
    windowEnd: null,
    lastRx: o.baselineRx,
    measuring: null,
    evidence: null,
    punches: 0,
    restored: false,
  };
}

/** The attempt keeps the re-added peer without addresses: the initiator until its punch, the responder until its answer. */
export function keepsSilent(at: AgentAttempt): boolean {
  return (at.role === 'initiator' && at.phase === 'ready') || (at.role === 'responder' && at.punches === 0);
}

/** The peer's packets reach us on the candidate: report it once, and answer so the peer hears us directly too. */
function evidence(at: AgentAttempt, peer: PeerState | undefined, relay: Endpoint | null, now: number): AttemptStep | null {
  const e = peer?.endpoint;
  const rx = peer?.rxBytes ?? 0;
  // Packets that crossed our own device update cannot be placed before or after it: they only set the baseline.
  if (at.lastRx === null) return { attempt: { ...at, lastRx: rx }, effects: [] };
  const newRx = rx > at.lastRx;
  const newHandshake = at.pointedAt !== null && (peer?.lastHandshakeMs ?? 0) > at.pointedAt;
  const seen = newRx ? { ...at, lastRx: rx } : at;
  const direct = e !== undefined && !e.equals(at.fallback) && !e.equals(relay) && at.kind.proves(e, at.candidate);
  if (!direct || !(newRx || (newHandshake && !at.evidence))) return newRx ? { attempt: seen, effects: [] } : null;
  const effects: AttemptEffect[] = [];
  let next: AgentAttempt = seen;
  if (!at.evidence) {
    next = { ...next, evidence: e };
    effects.push({ type: 'heard', endpoint: e, afterMs: now - at.readyAt });
  }
  // A responder whose handshake is not complete yet would send an initiation of its own: wait for
  // the initiator's first packet on the new session (it comes within a round trip), then answer.
  // From the relay the session is live: the initiator's packet is transport, and we answer at once.
  const waiting = at.role === 'responder' && at.fallback === null && !((peer?.lastHandshakeMs ?? 0) > (at.pointedAt ?? Infinity));
  if (next.punches < MAX_PUNCHES && !waiting) {
    next = { ...next, punches: next.punches + 1 };
    // No endpoint: WireGuard already points where the peer's packet came from.
    effects.push({ type: 'punch' });
  }
  return { attempt: next, effects };
}

function watch(at: AgentAttempt, now: number): AttemptStep {
  const effects: AttemptEffect[] = [];
  let next = at;
  if (at.phase === 'ready') {
    // The hub went away between the two steps: keep what was committed.
    return now >= at.readyAt + VERDICT_TIMEOUT_MS ? { attempt: null, effects: [{ type: 'abandon' }] } : { attempt: at, effects };
  }
  if (at.fallback && !at.restored && !at.evidence && at.holdUntil !== null && now >= at.holdUntil) {
    // The punch has left; our data goes back to the relay. A peer packet arriving directly later
    // still moves WireGuard to the direct path, and we see it above.
    next = { ...next, restored: true };
    effects.push({ type: 'point', endpoint: at.fallback });
  }
  if (next.phase === 'punched' && next.windowEnd !== null && now >= next.windowEnd) {
    next = { ...next, phase: 'over' };
    if (!next.evidence) {
      effects.push({ type: 'unheard', reason: `no direct answer within ${next.windowEnd! - next.readyAt} ms` });
      const fallback = next.fallback;
      if (fallback && !next.restored) {
        next = { ...next, restored: true };
        effects.push({ type: 'point', endpoint: fallback });
      }
    }
  }
  // No verdict: the hub is gone. Keep what was committed.
  if (next.phase === 'over' && now >= next.windowEnd! + VERDICT_TIMEOUT_MS) return { attempt: null, effects: [...effects, { type: 'abandon' }] };
  return { attempt: next, effects };
}

export function stepAttempt(at: AgentAttempt, input: AttemptInput, now: number): AttemptStep {
  switch (input.type) {
    case 'observe': {
      const ev = evidence(at, input.peer, input.relay, now);
      if (ev && ev.effects.length) return ev;
      return watch(ev?.attempt ?? at, now);
    }
    case 'punch': {
      if (at.phase !== 'ready') return { attempt: at, effects: [] };
      // The peer may have punched first: its packet is evidence, and WireGuard already points where it came from.
      const ev = evidence(at, input.peer, input.relay, now);
      const base = ev?.attempt ?? at;
      const punched: AgentAttempt = { ...base, phase: 'punched', windowEnd: now + at.windowMs, holdUntil: now + (at.fallback ? at.holdMs : at.windowMs) };
      if (punched.evidence) return { attempt: punched, effects: ev?.effects ?? [] };
      // The responder's NAT is open already; it answers the initiator instead of punching.
      if (at.role === 'responder') return { attempt: punched, effects: [] };
      if (!at.fallback) {
        // The endpoint was set when we got ready; WireGuard may since have moved it to where the
        // peer's packets really come from (a symmetric NAT's new port): keep that.
        return { attempt: punched, effects: [{ type: 'punch' }] };
      }
      return { attempt: { ...punched, pointedAt: now, measuring: { rxBefore: input.peer?.rxBytes ?? null } }, effects: [{ type: 'punch', endpoint: at.candidate }, { type: 'measure' }] };
    }
    case 'measured': {
      if (!at.measuring) return { attempt: at, effects: [] };
      const before = at.measuring.rxBefore;
      const after = input.peer;
      // Relayed packets arrive all the time: only what comes after the punch can tell.
      const next: AgentAttempt = { ...at, lastRx: after?.rxBytes ?? at.lastRx, measuring: null };
      // Something arrived while we were setting the endpoint, and WireGuard then saw nothing newer:
      // we cannot tell whether it came before or after. Punch again; the peer's answer will tell.
      const ambiguous = after !== undefined && before !== null && after.rxBytes > before && after.endpoint?.equals(at.candidate) === true;
      return { attempt: next, effects: ambiguous ? [{ type: 'punch' }] : [] };
    }
  }
}
