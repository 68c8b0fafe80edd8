import type { Endpoint } from '../../core/net/endpoint.js';
import { checkEpoch, type EpochSample } from '../../core/portmap/epoch.js';
import type { PortMappingProtocol } from '../../core/protocol.js';

/**
 * The agent's port mapping as an explicit state machine: `stepMapper` is pure (state, input,
 * time) -> (state, effects); mapper.ts carries the effects out (requests to the router, reports
 * to the hub, one timer).
 *
 * Phases: idle -> requesting -> mapped (renewed at half-life: requesting again, holding the old
 * mapping) or waiting (nothing usable; try again with backoff). A mapping held while a renewal
 * fails stays reported until it expires by our clock, then it is withdrawn.
 *
 * Timers, and why:
 * - lease 2 h requested (RFC 6886 recommends 7200 s), renewed at half of what was granted, so a
 *   lost renewal has the other half to be retried in;
 * - the router's epoch is checked every 60 s (PCP ANNOUNCE, NAT-PMP external address: one small
 *   datagram on the LAN): a router that rebooted lost the mapping, and waiting for the renewal
 *   would leave peers sending into nothing for up to an hour;
 * - a grant shorter than 2 min is refused: renewing it would be most of what the agent does, and
 *   a router that cuts leases that short is not one to rely on;
 * - retries after nothing usable: 30 s doubling to 30 min (most routers never answer, and then
 *   once after each network change is what matters).
 *
 * What a router says is checked here before it is used (internal port, public IPv4 address,
 * lifetime, epoch), and each distinct problem is logged once; only the hub's attempt proves that
 * the mapping really forwards.
 */

export const LEASE_S = 7200;
export const MIN_LEASE_S = 120;
export const CHECK_MS = 60_000;
export const RETRY_BASE_MS = 30_000;
export const RETRY_CAP_MS = 30 * 60_000;

export interface Mapping {
  protocol: PortMappingProtocol;
  external: Endpoint;
  internalPort: number;
  grantedAt: number;
  expiresAt: number;
  /** The router's epoch at the last reply (PCP, NAT-PMP); null for UPnP, which has none. */
  epoch: EpochSample | null;
  /** Protocol-specific handle a renewal or delete needs (the PCP nonce). */
  handle?: Uint8Array;
}

/** What one protocol client got from the router. */
export interface Grant {
  protocol: PortMappingProtocol;
  external: Endpoint;
  internalPort: number;
  lifetimeS: number;
  epochS: number | null;
  handle?: Uint8Array;
}

type Common = { problem: string | null; failures: number };
export type MapperState = Common &
  (
    | { phase: 'idle' }
    | { phase: 'requesting'; held: Mapping | null }
    | { phase: 'mapped'; mapping: Mapping; renewAt: number; checkAt: number }
    | { phase: 'waiting'; held: Mapping | null; retryAt: number }
  );

export type MapperInput =
  | { type: 'start' }
  | { type: 'granted'; grant: Grant }
  /**
   * No protocol gave a usable mapping; `problem` says why (silence, a refusal, garbage).
   * `answered`: a router spoke (a refusal or a reply we could not use), which is worth a warning;
   * silence is what most networks say, and only info.
   */
  | { type: 'failed'; problem: string; answered?: boolean }
  | { type: 'timer' }
  /** The router's epoch now, from a check; null: the check got no answer. */
  | { type: 'epoch'; serverS: number | null }
  | { type: 'network-changed' }
  | { type: 'stop' };

export type MapperEffect =
  /** Ask the router(s) for a mapping; `renew`: the one held now (same protocol and handle first). */
  | { type: 'request'; renew: Mapping | null }
  /** Ask the mapping's router for its epoch (feed back `epoch`). */
  | { type: 'check'; mapping: Mapping }
  | { type: 'delete'; mapping: Mapping }
  /** Release a grant that is not used (it failed our checks). */
  | { type: 'release'; grant: Grant }
  | { type: 'report'; mapping: Mapping | null }
  | { type: 'arm'; at: number }
  | { type: 'log'; level: 'info' | 'warn'; msg: string };

export interface MapperStep {
  state: MapperState;
  effects: MapperEffect[];
}

export const initialMapper: MapperState = { phase: 'idle', problem: null, failures: 0 };

function held(s: MapperState): Mapping | null {
  return s.phase === 'mapped' ? s.mapping : s.phase === 'requesting' || s.phase === 'waiting' ? s.held : null;
}

/** Why a grant cannot be used, or null. */
export function grantProblem(g: Grant, internalPort: number): string | null {
  if (g.internalPort !== internalPort) return `${g.protocol}: router mapped internal port ${g.internalPort}, not WireGuard's ${internalPort}`;
  if (g.external.family !== 4 || !g.external.address.isPublic()) return `${g.protocol}: router's external address ${g.external.address} is not a public IPv4 address (a NAT in front of it?)`;
  if (g.external.port === 0) return `${g.protocol}: router mapped external port 0`;
  if (g.lifetimeS < MIN_LEASE_S) return `${g.protocol}: router granted a lease of ${g.lifetimeS} s, under ${MIN_LEASE_S} s`;
  return null;
}

function problemOnce(s: MapperState, problem: string, level: 'info' | 'warn'): { problem: string; effects: MapperEffect[] } {
  return { problem, effects: s.problem === problem ? [] : [{ type: 'log', level, msg: problem }] };
}

function backoff(failures: number): number {
  return Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.max(0, failures - 1));
}

function wait(s: MapperState, now: number, problem: string, level: 'info' | 'warn', extra: MapperEffect[] = []): MapperStep {
  const failures = s.failures + 1;
  let h = held(s);
  const effects: MapperEffect[] = [...extra];
  if (h && h.expiresAt <= now) {
    effects.push({ type: 'report', mapping: null });
    h = null;
  }
  const p = problemOnce(s, problem, level);
  effects.push(...p.effects);
  // With a mapping still held, retry well before it runs out.
  const retryAt = now + (h ? Math.min(backoff(failures), Math.max(1000, (h.expiresAt - now) / 4)) : backoff(failures));
  effects.push({ type: 'arm', at: h ? Math.min(retryAt, h.expiresAt) : retryAt });
  return { state: { phase: 'waiting', held: h, retryAt, problem: p.problem, failures }, effects };
}

export function stepMapper(s: MapperState, input: MapperInput, now: number, internalPort: number): MapperStep {
  switch (input.type) {
    case 'start':
      if (s.phase !== 'idle') return { state: s, effects: [] };
      return { state: { phase: 'requesting', held: null, problem: s.problem, failures: 0 }, effects: [{ type: 'request', renew: null }] };
    case 'granted': {
      if (s.phase !== 'requesting') return { state: s, effects: [{ type: 'release', grant: input.grant }] };
      const g = input.grant;
      const bad = grantProblem(g, internalPort);
      if (bad) return wait(s, now, `${bad}; not used`, 'warn', [{ type: 'release', grant: g }]);
      const prev = s.held;
      // A renewal is a fresh grant: whatever the epoch did meanwhile, what it says now is the mapping.
      const epoch = g.epochS === null ? null : { serverS: g.epochS, clientMs: now };
      const mapping: Mapping = { protocol: g.protocol, external: g.external, internalPort: g.internalPort, grantedAt: now, expiresAt: now + g.lifetimeS * 1000, epoch, handle: g.handle };
      const renewAt = now + (g.lifetimeS * 1000) / 2;
      const checkAt = epoch ? now + CHECK_MS : Infinity;
      const effects: MapperEffect[] = [];
      // Same endpoint or not, the hub is told: it counts the mapping only until the expiry it knows.
      effects.push({ type: 'report', mapping });
      if (!prev || !prev.external.equals(g.external) || prev.protocol !== g.protocol) effects.push({ type: 'log', level: 'info', msg: `${g.protocol}: router maps ${g.external} to port ${g.internalPort} for ${g.lifetimeS} s` });
      effects.push({ type: 'arm', at: Math.min(renewAt, checkAt) });
      return { state: { phase: 'mapped', mapping, renewAt, checkAt, problem: null, failures: 0 }, effects };
    }
    case 'failed': {
      if (s.phase !== 'requesting') return { state: s, effects: [] };
      return wait(s, now, input.problem, s.held || input.answered ? 'warn' : 'info');
    }
    case 'timer': {
      if (s.phase === 'mapped') {
        if (now >= s.renewAt) return { state: { phase: 'requesting', held: s.mapping, problem: s.problem, failures: s.failures }, effects: [{ type: 'request', renew: s.mapping }] };
        if (now >= s.checkAt) return { state: { ...s, checkAt: Infinity }, effects: [{ type: 'check', mapping: s.mapping }] };
        return { state: s, effects: [{ type: 'arm', at: Math.min(s.renewAt, s.checkAt) }] };
      }
      if (s.phase === 'waiting') {
        let h = s.held;
        const effects: MapperEffect[] = [];
        if (h && h.expiresAt <= now) {
          // The lease ran out before a renewal worked: peers must not be sent there any more.
          effects.push({ type: 'report', mapping: null }, { type: 'log', level: 'warn', msg: `${h.protocol}: mapping ${h.external} expired before the router renewed it; withdrawn` });
          h = null;
        }
        if (now >= s.retryAt) return { state: { phase: 'requesting', held: h, problem: s.problem, failures: s.failures }, effects: [...effects, { type: 'request', renew: h }] };
        if (h) effects.push({ type: 'arm', at: Math.min(s.retryAt, h.expiresAt) });
        else effects.push({ type: 'arm', at: s.retryAt });
        return { state: { ...s, held: h }, effects };
      }
      return { state: s, effects: [] };
    }
    case 'epoch': {
      if (s.phase !== 'mapped') return { state: s, effects: [] };
      const checkAt = now + CHECK_MS;
      if (input.serverS === null) return { state: { ...s, checkAt }, effects: [{ type: 'arm', at: Math.min(s.renewAt, checkAt) }] };
      const sample = { serverS: input.serverS, clientMs: now };
      const v = s.mapping.epoch ? checkEpoch(s.mapping.epoch, sample) : { ok: true as const };
      if (v.ok) return { state: { ...s, checkAt, mapping: { ...s.mapping, epoch: sample } }, effects: [{ type: 'arm', at: Math.min(s.renewAt, checkAt) }] };
      // The router lost its state: the mapping is gone. Withdraw it and map again at once.
      return {
        state: { phase: 'requesting', held: null, problem: null, failures: 0 },
        effects: [{ type: 'report', mapping: null }, { type: 'log', level: 'warn', msg: `${s.mapping.protocol}: ${v.problem}; mapping again` }, { type: 'request', renew: null }],
      };
    }
    case 'network-changed': {
      if (s.phase === 'idle') return { state: s, effects: [] };
      // Another router (or none): the old mapping cannot be reached to delete, and means nothing now.
      const effects: MapperEffect[] = held(s) ? [{ type: 'report', mapping: null }] : [];
      return { state: { phase: 'requesting', held: null, problem: null, failures: 0 }, effects: [...effects, { type: 'request', renew: null }] };
    }
    case 'stop': {
      const h = held(s);
      return { state: { ...initialMapper }, effects: h ? [{ type: 'delete', mapping: h }, { type: 'report', mapping: null }] : [] };
    }
  }
}
