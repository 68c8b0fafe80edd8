/**
 * Which transport the agent's hub peer uses: plain UDP, or WireGuard over the hub's TLS stream
 * (issue 12, agent/stream-shim.ts). The pure transition of that choice; hub-stream.ts carries out
 * its effects on the device, the shim and a STUN socket.
 *
 *   udp (unproven) --no handshake or reply within UDP_DEADLINE_MS--> trying-stream
 *   udp (proven)   --nothing from the hub for UDP_SILENT_MS-------> trying-stream
 *   trying-stream  --a handshake over the stream------------------> stream
 *   trying-stream / stream --probe due---------------------------> probing-udp
 *   probing-udp    --the hub's STUN responder answered------------> returning (hub peer back on UDP)
 *   probing-udp    --no answer-----------------------------------> stream (next probe later, doubled)
 *   returning      --a handshake over UDP--------------------------> udp (proven); the stream stops
 *   returning      --none within UDP_DEADLINE_MS-------------------> trying-stream (probe backoff doubled)
 *   any            --network changed----------------------------> udp: unproven again / probe now
 *
 * Proof is WireGuard's own: a handshake completed after the switch (each switch re-adds the hub
 * peer, so WireGuard initiates at once on the new transport instead of waiting out its 5 s
 * REKEY_TIMEOUT), or, on UDP, the hub peer's received bytes growing (the control connection's
 * TCP acknowledgements and 10 s heartbeat come back through the tunnel).
 *
 * UDP_DEADLINE_MS: a handshake with the hub takes a round trip plus the hub's WireGuard. Measured
 * in the lab (bench/stream-choice.ts, 2-core VM at load average 6-8 from other lab runs): 37-117
 * ms from `wg-quick up` to the handshake, median 112 ms. 2 s is 17 times that and leaves round
 * trips up to a second (a satellite link is 600 ms); with 3 s the 5 s from both agents up
 * to the first ping was missed (median 5.3 s: the agent's own start, ~1.5 s on this VM, comes
 * first). A lost first initiation on a network that does pass UDP (WireGuard retries after 5 s)
 * costs a detour over the stream until the first probe, 1 s later.
 *
 * Probes: the hub's STUN responder (UDP 3478) answers a Binding request only if UDP passes both
 * ways, without touching WireGuard's session. 1 s doubling to 15 s: a router that starts passing
 * UDP (the lab changes the router's rules; no interface of ours changes) is noticed within 15 s,
 * a network change (the laptop leaving the hotel) at once; a probe is one 100-byte datagram.
 */

export const UDP_DEADLINE_MS = 2000;
/** The heartbeat (core/heartbeat.ts) answers every 10 s: two missed and a bit. */
export const UDP_SILENT_MS = 25_000;
export const PROBE_MIN_MS = 1000;
export const PROBE_MAX_MS = 15_000;
/**
 * After a network change the first probe goes at once, and often finds the new network not ready
 * (measured in the lab: the address is there before the route and the neighbour entry, and the
 * probe's three tries in 750 ms went unanswered): the next ones follow 250 ms doubling.
 */
export const NETWORK_PROBE_MS = 250;

export type TransportState =
  /** The hub peer sends over UDP; `proven` once the hub was heard after `since`. */
  /** `hs`, `rx`: the newest handshake and the received bytes seen so far; more of either is the hub heard. */
  | { readonly kind: 'udp'; readonly since: number; readonly proven: boolean; readonly heardAt: number; readonly hs: number; readonly rx: number; readonly reason: string }
  /** The hub peer points at the shim; no handshake over the stream yet. */
  | { readonly kind: 'trying-stream'; readonly since: number; readonly reason: string; readonly probeAt: number; readonly probeMs: number }
  | { readonly kind: 'stream'; readonly since: number; readonly reason: string; readonly probeAt: number; readonly probeMs: number }
  /** A STUN probe toward the hub is in flight; the hub peer stays on the stream. */
  | { readonly kind: 'probing-udp'; readonly since: number; readonly reason: string; readonly probeMs: number; readonly onStream: boolean }
  /** STUN passed: the hub peer points at UDP again, waiting for a handshake there. */
  | { readonly kind: 'returning'; readonly since: number; readonly reason: string; readonly probeMs: number };

export type TransportEvent =
  /** A reading of the hub peer: its last handshake (ms since the epoch, 0: none) and received bytes. */
  | { readonly type: 'observe'; readonly now: number; readonly handshakeMs: number; readonly rx: number }
  | { readonly type: 'network-changed'; readonly now: number; readonly rx: number }
  | { readonly type: 'probed'; readonly now: number; readonly answered: boolean };

export type TransportEffect =
  /** Start the shim if it is not running, open the hub channel, re-add the hub peer at its local endpoint. */
  | { readonly type: 'use-stream' }
  /** Close the shim's hub channel and re-add the hub peer at the hub's UDP endpoint. */
  | { readonly type: 'use-udp' }
  | { readonly type: 'probe' }
  /** UDP is proven: the shim may stop (its relay channels go with it; the hub moves those pairs). */
  | { readonly type: 'stop-stream' };

export interface TransportStep {
  readonly state: TransportState;
  readonly effects: readonly TransportEffect[];
}

/** WireGuard keeps a session for 180 s (REJECT_AFTER_TIME): a handshake younger than that, from before the agent started (wg-quick up's), counts. */
const SESSION_MS = 180_000;

export function initialTransport(now: number, rx: number, handshakeMs = 0): TransportState {
  const live = handshakeMs > now - SESSION_MS;
  return { kind: 'udp', since: now, proven: live, heardAt: live ? handshakeMs : now, hs: handshakeMs, rx, reason: live ? 'handshake with the hub over UDP' : 'starting' };
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

function toStream(now: number, reason: string, probeMs: number): TransportStep {
  return { state: { kind: 'trying-stream', since: now, reason, probeAt: now + probeMs, probeMs }, effects: [{ type: 'use-stream' }] };
}

const same = (state: TransportState): TransportStep => ({ state, effects: [] });

/** The pure transition. */
export function transportStep(s: TransportState, e: TransportEvent): TransportStep {
  if (e.type === 'network-changed') {
    switch (s.kind) {
      case 'udp':
        // The old network's proof says nothing about this one.
        return same({ kind: 'udp', since: e.now, proven: false, heardAt: e.now, hs: Math.max(s.hs, e.now), rx: e.rx, reason: 'network changed' });
      case 'trying-stream':
      case 'stream':
        return same({ ...s, probeAt: e.now, probeMs: NETWORK_PROBE_MS });
      case 'probing-udp':
      case 'returning':
        return same({ ...s, probeMs: NETWORK_PROBE_MS });
    }
  }
  if (e.type === 'probed') {
    if (s.kind !== 'probing-udp') return same(s);
    if (e.answered) return { state: { kind: 'returning', since: e.now, reason: "the hub's STUN responder answered over UDP", probeMs: s.probeMs }, effects: [{ type: 'use-udp' }] };
    const probeMs = Math.min(PROBE_MAX_MS, s.probeMs * 2);
    const kind = s.onStream ? 'stream' : 'trying-stream';
    return same({ kind, since: s.since, reason: s.reason, probeAt: e.now + s.probeMs, probeMs });
  }
  const { now } = e;
  switch (s.kind) {
    case 'udp': {
      const heard = e.handshakeMs > s.hs || e.rx > s.rx;
      if (heard) return same({ ...s, proven: true, heardAt: now, hs: Math.max(s.hs, e.handshakeMs), rx: e.rx, reason: s.proven ? s.reason : 'handshake with the hub over UDP' });
      if (!s.proven && now - s.since >= UDP_DEADLINE_MS) return toStream(now, `no UDP handshake with the hub within ${seconds(UDP_DEADLINE_MS)}`, PROBE_MIN_MS);
      if (s.proven && now - s.heardAt >= UDP_SILENT_MS) return toStream(now, `nothing from the hub over UDP for ${seconds(now - s.heardAt)}`, PROBE_MIN_MS);
      return same(s);
    }
    case 'trying-stream':
      if (e.handshakeMs > s.since) return same({ kind: 'stream', since: s.since, reason: s.reason, probeAt: s.probeAt, probeMs: s.probeMs });
      if (now >= s.probeAt) return { state: { kind: 'probing-udp', since: s.since, reason: s.reason, probeMs: s.probeMs, onStream: false }, effects: [{ type: 'probe' }] };
      return same(s);
    case 'stream':
      if (now >= s.probeAt) return { state: { kind: 'probing-udp', since: s.since, reason: s.reason, probeMs: s.probeMs, onStream: true }, effects: [{ type: 'probe' }] };
      return same(s);
    case 'probing-udp':
      // The probe's answer (or its timeout) moves on; a handshake meanwhile is the stream's.
      if (!s.onStream && e.handshakeMs > s.since) return same({ ...s, onStream: true });
      return same(s);
    case 'returning':
      if (e.handshakeMs > s.since) return { state: { kind: 'udp', since: now, proven: true, heardAt: now, hs: e.handshakeMs, rx: e.rx, reason: 'UDP passes again (STUN answered, handshake over UDP)' }, effects: [{ type: 'stop-stream' }] };
      if (now - s.since >= UDP_DEADLINE_MS) return toStream(now, `STUN passed but no WireGuard handshake over UDP within ${seconds(UDP_DEADLINE_MS)}`, Math.min(PROBE_MAX_MS, s.probeMs * 2));
      return same(s);
  }
}

/** Whether the agent should read the device often: a deadline or a proof is awaited. */
export function transportBusy(s: TransportState): boolean {
  return (s.kind === 'udp' && !s.proven) || s.kind === 'trying-stream' || s.kind === 'returning';
}

/** The hub peer rides the stream in this state. */
export function onStream(s: TransportState): boolean {
  return s.kind === 'trying-stream' || s.kind === 'stream' || (s.kind === 'probing-udp');
}
