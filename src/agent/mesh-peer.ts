import type { Logger } from '../core/log.js';
import type { PathCommand, PathEvent, PathState, PeerInfo, PeerReport } from '../core/protocol.js';
import type { WireGuardDevice } from '../core/wireguard/device.js';
import type { PeerState } from '../core/wireguard/uapi.js';

/**
 * Carries out the hub's path decisions for one peer that is another agent, and tells the hub
 * what WireGuard saw.
 *
 * The evidence is WireGuard's own: it moves a peer's endpoint to the source address of every
 * packet it authenticates. So "rx grew and the endpoint is not the relay" means the peer's
 * packets reached us directly, and "rx grew and the endpoint is the relay" that they came through
 * the relay. Nothing else can move the endpoint, so no probe of our own is needed.
 *
 * Measured facts this relies on (wireguard-go, README "Measured facts"): setting an endpoint
 * sends nothing; a persistent-keepalive interval going from 0 to non-zero sends a keepalive (or a
 * handshake initiation) within ~5 ms. Removing and re-adding a peer drops its session, so the
 * next packet is a handshake: the relay learns a node's port only from handshakes.
 */

export interface MeshPeerDeps {
  device: WireGuardDevice;
  keepalive(): number;
  emit(ev: PathEvent): void;
  changed(): void;
  log: Logger;
}

type Committed = 'none' | 'direct' | 'relay' | 'hub';

interface Attempt {
  seq: number;
  /** The candidate the hub gave us. */
  endpoint: string;
  /** The relay to go back to after the punch, when the pair is relayed. */
  fallback: string | null;
  windowMs: number;
  holdMs: number;
  /** When we got ready; the window and the hold start at the punch. */
  startedAt: number;
  punched: boolean;
  /** Wall-clock time the endpoint was set: a handshake newer than this happened on the new path. */
  setAt: number;
  holdUntil: number;
  windowEnd: number;
  lastRx: number;
  evidence: string | null;
  punches: number;
  restored: boolean;
  done: boolean;
}

/** Extra punches after evidence, so the peer also hears from us directly (a ping-pong of keepalives). */
const MAX_PUNCHES = 3;
const DATA_UNANSWERED_MS = 12_000;
/** WireGuard keeps a session for 180 s (REJECT_AFTER_TIME); older than this, assume there is none. */
const SESSION_MS = 170_000;
/** If the hub does not answer an attempt (it went away), stop waiting for its verdict after this. */
const VERDICT_TIMEOUT_MS = 10_000;

export class MeshPeer {
  committed: Committed = 'none';
  /** Highest command seq applied; reset when the hub connection is new (a restarted hub counts from 0). */
  seq = -1;
  direct: string | null = null;
  relay: string | null = null;
  relayId: string | null = null;
  private relaySeq = -1;
  private relayOkSent = false;
  private attempt?: Attempt;
  private lastRx = 0;
  private lastRxAt = Date.now();
  private txAtLastRx = 0;
  private lostSent = false;
  private lastDirectRxReport = 0;
  directAfterMs: number | null = null;
  reason: string | null = null;

  constructor(
    public info: PeerInfo,
    private readonly deps: MeshPeerDeps,
  ) {}

  get key(): string {
    return this.info.publicKey;
  }

  /** Whether the watch loop should look often (an attempt awaits its verdict, or a relay is unconfirmed). */
  get busy(): boolean {
    return this.attempt !== undefined || (this.committed === 'relay' && !this.relayOkSent);
  }

  path(): PathState {
    if (this.attempt && !this.attempt.done) return 'trying';
    switch (this.committed) {
      case 'direct':
        return 'direct';
      case 'relay':
        return this.relayOkSent ? 'relayed' : 'relaying';
      case 'hub':
        return 'proxied';
      default:
        return this.attempt?.done ? 'impossible' : 'unknown';
    }
  }

  report(p: PeerState | undefined): PeerReport {
    return {
      publicKey: this.key,
      path: this.path(),
      endpoint: p?.endpoint ?? null,
      handshakeAgeMs: p && p.lastHandshakeMs > 0 ? Math.max(0, Date.now() - p.lastHandshakeMs) : null,
      rxBytes: p?.rxBytes ?? 0,
      txBytes: p?.txBytes ?? 0,
      directAfterMs: this.directAfterMs,
      reason: this.reason,
      relayId: this.relayId,
    };
  }

  /** The peer entry with its addresses, so that WireGuard accepts it even before any path is chosen. */
  async ensure(p: PeerState | undefined): Promise<void> {
    if (this.committed === 'hub') return;
    const same = p && p.allowedIps.slice().sort().join() === this.info.allowedIps.slice().sort().join();
    if (!same) await this.deps.device.set({ peers: [{ publicKey: this.key, allowedIps: this.info.allowedIps }] });
  }

  async apply(cmd: PathCommand, p: PeerState | undefined): Promise<void> {
    if (cmd.mode === 'punch') return this.punchNow(cmd, p);
    if (cmd.seq <= this.seq) return;
    this.seq = cmd.seq;
    switch (cmd.mode) {
      case 'attempt':
        return this.prepare(cmd, p);
      case 'direct':
        return this.commitDirect(cmd, p);
      case 'relay':
        return this.useRelay(cmd, p);
      case 'hub':
        return this.useHub();
    }
  }

  /**
   * Get ready for the punch without sending anything (setting an endpoint sends nothing), then
   * say so. Whatever the peer sends from now on finds us expecting it: a peer entry that is not
   * about to be re-added, pointing where the peer will be.
   */
  private async prepare(cmd: PathCommand, p: PeerState | undefined): Promise<void> {
    if (!cmd.endpoint) return;
    const fallback = cmd.relay !== null && this.committed === 'relay' && cmd.relayId === this.relayId ? cmd.relay : null;
    if (this.committed === 'hub') {
      this.committed = 'none';
      await this.ensure(undefined);
    }
    const now = Date.now();
    // Without a session the punch is a handshake initiation, and wireguard-go sends at most one per
    // 5 s (REKEY_TIMEOUT): right after a failed LAN attempt it would send nothing toward the next
    // candidate. A re-added peer starts with a clean handshake state.
    const readd = !fallback && (p?.lastHandshakeMs ?? 0) < now - SESSION_MS;
    if (readd) await this.deps.device.set({ peers: [{ publicKey: this.key, remove: true }] });
    // From the relay, the relay keeps carrying our data until the punch borrows the direct path.
    if (!fallback) await this.deps.device.set({ peers: [{ publicKey: this.key, allowedIps: this.info.allowedIps, endpoint: cmd.endpoint, persistentKeepalive: 0 }] });
    const after = readd ? undefined : await this.peerState();
    this.attempt = {
      seq: cmd.seq,
      endpoint: cmd.endpoint,
      fallback,
      windowMs: cmd.windowMs,
      holdMs: cmd.holdMs,
      startedAt: now,
      punched: false,
      setAt: fallback ? Infinity : Date.now(),
      holdUntil: Infinity,
      windowEnd: Infinity,
      // A re-added peer counts from zero: everything it authenticates came in this attempt.
      lastRx: readd ? 0 : (after?.rxBytes ?? p?.rxBytes ?? 0),
      evidence: null,
      punches: 0,
      restored: false,
      done: false,
    };
    this.deps.log.debug({ peer: this.info.name, seq: cmd.seq, endpoint: cmd.endpoint, fallback, readd, rx: after?.rxBytes ?? 0 }, 'attempt ready');
    this.reason = null;
    this.deps.emit({ type: 'path-event', publicKey: this.key, seq: cmd.seq, event: 'ready', endpoint: null, afterMs: Date.now() - now });
    this.deps.changed();
  }

  /** Both sides are ready: make WireGuard send, and watch for the peer's answer until the window ends. */
  private async punchNow(cmd: PathCommand, p: PeerState | undefined): Promise<void> {
    const at = this.attempt;
    if (!at || at.seq !== cmd.seq || at.punched) return;
    // The peer may have punched first: its packet is evidence, and WireGuard already points where it came from.
    await this.tickAttempt(at, p, Date.now());
    if (this.attempt !== at) return;
    const now = Date.now();
    at.punched = true;
    at.windowEnd = now + at.windowMs;
    at.holdUntil = now + (at.fallback ? at.holdMs : at.windowMs);
    this.deps.log.debug({ peer: this.info.name, seq: at.seq, evidence: at.evidence, rx: p?.rxBytes ?? null, endpoint: p?.endpoint ?? null }, 'punch');
    if (at.evidence) return; // tickAttempt answered the peer already
    if (!at.fallback) {
      // The endpoint was set when we got ready; WireGuard may since have moved it to where the
      // peer's packets really come from (a symmetric NAT's new port): keep that.
      await this.punch();
      return;
    }
    at.setAt = Date.now();
    await this.punch(at.endpoint);
    const after = await this.peerState();
    // Relayed packets arrive all the time: only what comes after the punch can tell.
    at.lastRx = after?.rxBytes ?? at.lastRx;
    // Something arrived while we were setting the endpoint, and WireGuard then saw nothing newer: we
    // cannot tell whether it came before or after. Punch again; the peer's answer will tell.
    if (after && p && after.rxBytes > p.rxBytes && after.endpoint === at.endpoint) await this.punch();
  }

  private async commitDirect(cmd: PathCommand, p: PeerState | undefined): Promise<void> {
    const wasAttempt = this.attempt;
    this.attempt = undefined;
    this.committed = 'direct';
    this.direct = cmd.endpoint ?? p?.endpoint ?? null;
    this.lastRxAt = Date.now();
    this.txAtLastRx = p?.txBytes ?? 0;
    this.lostSent = false;
    this.reason = null;
    if (wasAttempt) this.directAfterMs = Date.now() - wasAttempt.startedAt;
    // The peer may have roamed us back to the relay in between: point at the direct path and let it hear us there.
    if (this.direct && p?.endpoint !== this.direct) await this.punch(this.direct);
    this.deps.changed();
  }

  private async useRelay(cmd: PathCommand, p: PeerState | undefined): Promise<void> {
    if (!cmd.relay) return;
    this.attempt = undefined;
    const sameAllocation = this.committed === 'relay' && cmd.relayId === this.relayId;
    this.relay = cmd.relay;
    this.relayId = cmd.relayId;
    this.relaySeq = cmd.seq;
    this.lastRxAt = Date.now();
    this.txAtLastRx = sameAllocation ? (p?.txBytes ?? 0) : 0;
    this.lostSent = false;
    if (sameAllocation) {
      if (p?.endpoint !== cmd.relay) await this.deps.device.set({ peers: [{ publicKey: this.key, endpoint: cmd.relay }] });
    } else {
      // A new allocation (or we come from another path) learns our port only from a handshake: start a new session.
      this.committed = 'relay';
      this.relayOkSent = false;
      await this.deps.device.set({ peers: [{ publicKey: this.key, remove: true }] });
      await this.deps.device.set({
        peers: [
          { publicKey: this.key, endpoint: cmd.relay, allowedIps: this.info.allowedIps, persistentKeepalive: 0 },
          { publicKey: this.key, persistentKeepalive: this.deps.keepalive() },
        ],
      });
    }
    this.committed = 'relay';
    this.deps.changed();
  }

  private async useHub(): Promise<void> {
    this.attempt = undefined;
    if (this.committed !== 'hub') await this.deps.device.set({ peers: [{ publicKey: this.key, remove: true }] });
    this.committed = 'hub';
    this.relayId = null;
    this.deps.changed();
  }

  private async peerState(): Promise<PeerState | undefined> {
    return (await this.deps.device.get()).peers.find((x) => x.publicKey === this.key);
  }

  /** Point at `endpoint` (if given) and make WireGuard send now. */
  private async punch(endpoint?: string): Promise<void> {
    await this.deps.device.set({
      peers: [
        { publicKey: this.key, allowedIps: this.info.allowedIps, ...(endpoint ? { endpoint } : {}), persistentKeepalive: 0 },
        { publicKey: this.key, persistentKeepalive: this.deps.keepalive() },
      ],
    });
  }

  /** Called with a fresh read of the device: every 50 ms while busy, else about once a second. */
  async tick(p: PeerState | undefined, now: number): Promise<void> {
    const rx = p?.rxBytes ?? 0;
    const tx = p?.txBytes ?? 0;
    const grew = rx > this.lastRx;
    if (grew || rx < this.lastRx) {
      this.lastRx = rx;
      this.lastRxAt = now;
      this.txAtLastRx = tx;
      this.lostSent = false;
    }
    if (tx < this.txAtLastRx) this.txAtLastRx = tx;
    const at = this.attempt;
    if (at) return this.tickAttempt(at, p, now);
    const e = p?.endpoint;
    if (this.committed === 'relay' && this.relay) {
      if (!this.relayOkSent && rx > 0 && e === this.relay) {
        this.relayOkSent = true;
        this.reason = null;
        this.deps.emit({ type: 'path-event', publicKey: this.key, seq: this.relaySeq, event: 'relay-ok', endpoint: this.relay, afterMs: null });
        this.deps.changed();
      }
      if (e && e !== this.relay && grew) {
        // The peer's packets arrive directly (WireGuard moved the endpoint): worth an attempt.
        // Until the hub coordinates one, keep sending through the relay.
        if (now - this.lastDirectRxReport > 5000) {
          this.lastDirectRxReport = now;
          this.deps.emit({ type: 'path-event', publicKey: this.key, seq: this.relaySeq, event: 'direct-rx', endpoint: e, afterMs: null });
        }
        await this.deps.device.set({ peers: [{ publicKey: this.key, endpoint: this.relay }] });
      }
    } else if (this.committed === 'direct' && this.direct) {
      if (e === this.relay && e !== undefined) {
        // A packet the peer still sent through the relay moved us back there: we decided direct.
        await this.deps.device.set({ peers: [{ publicKey: this.key, endpoint: this.direct }] });
      } else if (e && e !== this.direct) {
        // The peer's NAT gave it a new port (or it moved): WireGuard followed it, and so do we.
        this.direct = e;
      }
    }
    if ((this.committed === 'direct' || this.committed === 'relay') && !this.lostSent && this.silent(now, tx)) {
      this.lostSent = true;
      this.reason = `nothing from the peer for ${Math.round((now - this.lastRxAt) / 1000)} s`;
      this.deps.emit({ type: 'path-event', publicKey: this.key, seq: this.committed === 'relay' ? this.relaySeq : this.seq, event: 'lost', endpoint: e ?? null, afterMs: null });
      this.deps.changed();
    }
  }

  /**
   * The path carries nothing from the peer any more. Both sides send keepalives every K s, so an
   * idle live path brings something within K s: 2K + 5 s of nothing is a dead path. Sooner when we
   * sent data: WireGuard answers data it received with a keepalive after 10 s at the latest
   * (KEEPALIVE_TIMEOUT), so data out and nothing back for 12 s is a dead path too. Keepalives
   * alone are 32 bytes each; "data" is more than a few of them.
   */
  private silent(now: number, tx: number): boolean {
    const quiet = now - this.lastRxAt;
    return quiet > (2 * (this.deps.keepalive() || 25) + 5) * 1000 || (quiet > DATA_UNANSWERED_MS && tx - this.txAtLastRx >= 256);
  }

  private async tickAttempt(at: Attempt, p: PeerState | undefined, now: number): Promise<void> {
    const e = p?.endpoint;
    const rx = p?.rxBytes ?? 0;
    const viaRelay = e === undefined || e === at.fallback || (this.relay !== null && e === this.relay);
    const newRx = rx > at.lastRx;
    const newHandshake = (p?.lastHandshakeMs ?? 0) > at.setAt;
    if (newRx) at.lastRx = rx;
    if (!viaRelay && (newRx || (newHandshake && !at.evidence))) {
      // Also after our window ended: a peer whose agent was busy starts its window late, and the
      // hub waits for its answer before it gives up on the candidate.
      if (!at.evidence) {
        at.evidence = e!;
        this.deps.emit({ type: 'path-event', publicKey: this.key, seq: at.seq, event: 'direct-rx', endpoint: e!, afterMs: now - at.startedAt });
      }
      // Let the peer hear us directly too, so that it has its evidence (the first punch may have hit its NAT before its own left).
      if (at.punches < MAX_PUNCHES) {
        at.punches++;
        // No endpoint: WireGuard already points where the peer's packet came from.
        await this.punch();
      }
      return;
    }
    if (!at.punched) {
      // The hub went away between the two steps: keep what was committed.
      if (now >= at.startedAt + VERDICT_TIMEOUT_MS) await this.abandon();
      return;
    }
    if (at.fallback && !at.restored && !at.evidence && now >= at.holdUntil) {
      // The punch has left; our data goes back to the relay. A peer packet arriving directly later
      // still moves WireGuard to the direct path, and we see it above.
      at.restored = true;
      await this.deps.device.set({ peers: [{ publicKey: this.key, endpoint: at.fallback }] });
    }
    if (!at.done && now >= at.windowEnd) {
      at.done = true;
      if (!at.evidence) {
        this.reason = `no direct answer within ${at.windowEnd - at.startedAt} ms`;
        this.deps.emit({ type: 'path-event', publicKey: this.key, seq: at.seq, event: 'failed', endpoint: null, afterMs: null });
        if (at.fallback && !at.restored) await this.deps.device.set({ peers: [{ publicKey: this.key, endpoint: at.fallback }] });
      }
      this.deps.changed();
    }
    // No verdict: the hub is gone. Keep what was committed.
    if (at.done && now >= at.windowEnd + VERDICT_TIMEOUT_MS) await this.abandon();
  }

  private async abandon(): Promise<void> {
    this.attempt = undefined;
    const back = this.committed === 'relay' ? this.relay : this.committed === 'direct' ? this.direct : null;
    await this.deps.device.set({ peers: [{ publicKey: this.key, ...(back ? { endpoint: back } : {}), persistentKeepalive: this.deps.keepalive() }] });
    this.deps.changed();
  }
}
