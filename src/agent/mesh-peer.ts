import { kindOf } from '../core/candidates/index.js';
import type { Logger } from '../core/log.js';
import type { IpAddress } from '../core/net/address.js';
import type { PeerStateName } from '../core/paths.js';
import type { PathCommand, PathEvent, PeerInfo, PeerReport, PreparePathCommand } from '../core/protocol.js';
import type { WireGuardDevice } from '../core/wireguard/device.js';
import type { PeerState } from '../core/wireguard/uapi.js';
import { keepsSilent, readyAttempt, stepAttempt, type AgentAttempt, type AttemptEffect, type AttemptInput, type AttemptRole } from './attempt.js';
import { Liveness } from './liveness.js';
import { LivenessProbe } from './liveness-probe.js';
import { openNat } from './open-nat.js';
import { NO_PUNCH_TTL, type PunchTtl } from './punch-ttl.js';
import { enterPath, nonePath, point, punch, type CommittedPath, type PeerContext } from './paths/index.js';
import type { StreamChannels } from './paths/path.js';

/**
 * Carries out the hub's path decisions for one peer that is another agent, and tells the hub
 * what WireGuard saw. The committed path is one of the modules in paths/; a direct attempt is the
 * state machine in attempt.ts, whose effects are applied here. Every hub message and every tick
 * comes with one reading of the device, taken by the agent.
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
  now?: () => number;
  /** Opening packets that die before the peer's router (punch-ttl.ts); absent: full TTL. */
  punchTtl?: PunchTtl;
  /** This node's relay sides on the hub's stream (tcp-relay paths); absent: none. */
  stream?: StreamChannels;
  /** Sends a datagram of data to the peer's tunnel address (liveness.ts); absent: quiet peers are never probed. */
  probe?: (to: IpAddress) => void;
}

/** WireGuard keeps a session for 180 s (REJECT_AFTER_TIME); older than this, assume there is none. */
const SESSION_MS = 170_000;

export class MeshPeer {
  /** Highest command seq applied; reset when the hub connection is new (a restarted hub counts from 0). */
  seq = -1;
  directAfterMs: number | null = null;
  reason: string | null = null;
  private path: CommittedPath;
  private attempt: AgentAttempt | null = null;
  private lastAttemptFailed = false;
  private readonly liveness: Liveness;
  private readonly ctx: PeerContext;
  private readonly now: () => number;

  constructor(
    public info: PeerInfo,
    private readonly deps: MeshPeerDeps,
  ) {
    this.now = deps.now ?? Date.now;
    this.liveness = new Liveness(this.now());
    this.path = nonePath(() => this.lastAttemptFailed);
    this.ctx = { key: info.publicKey, info: () => this.info, device: deps.device, keepalive: deps.keepalive, emit: deps.emit, changed: deps.changed, log: deps.log, stream: deps.stream };
  }

  get key(): string {
    return this.info.publicKey;
  }

  /** Whether the watch loop should look often (an attempt awaits its verdict, or a relay is unconfirmed). */
  get busy(): boolean {
    return this.attempt !== null || this.path.busy();
  }

  /** The peer is reached through the hub: its addresses belong on the hub peer. */
  get viaHub(): boolean {
    return !this.path.hasEntry;
  }

  show(): PeerStateName {
    if (this.attempt && this.attempt.phase !== 'over') return 'trying';
    return this.path.show();
  }

  report(p: PeerState | undefined): PeerReport {
    return {
      publicKey: this.key,
      path: this.show(),
      kind: this.path.kind,
      endpoint: p?.endpoint ?? null,
      handshakeAgeMs: p && p.lastHandshakeMs > 0 ? Math.max(0, this.now() - p.lastHandshakeMs) : null,
      rxBytes: p?.rxBytes ?? 0,
      txBytes: p?.txBytes ?? 0,
      directAfterMs: this.directAfterMs,
      reason: this.reason,
      relayId: this.path.relayId,
      relay: this.path.carriedBy ?? null,
    };
  }

  /** The peer entry with its addresses, so that WireGuard accepts it even before any path is chosen. */
  async ensure(p: PeerState | undefined): Promise<void> {
    if (!this.path.hasEntry) return;
    // An attempt keeps the peer without addresses until it may send (attempt.ts, roles).
    if (this.attempt && keepsSilent(this.attempt)) return;
    const same = p && p.allowedIps.slice().sort().join() === this.info.allowedIps.slice().sort().join();
    if (!same) await this.deps.device.set({ peers: [{ publicKey: this.key, allowedIps: this.info.allowedIps }] });
  }

  async apply(cmd: PathCommand, p: PeerState | undefined): Promise<void> {
    if (cmd.step === 'punch') {
      if (this.attempt?.seq === cmd.seq) await this.feed({ type: 'punch', peer: p, relay: this.path.relay }, this.now());
      return;
    }
    if (cmd.seq <= this.seq) return;
    this.seq = cmd.seq;
    if (cmd.step === 'prepare') return this.prepare(cmd, p);
    const wasAttempt = this.attempt;
    this.attempt = null;
    const prev = this.path;
    this.path = await enterPath(this.ctx, prev, cmd.path, cmd.seq, p);
    // Direct while this side was still silent (its answer had not gone out yet): give the peer its
    // addresses and keepalive now. The peer's handshake is done by then, so this cannot cross it.
    if (this.path.via === 'direct' && wasAttempt && keepsSilent(wasAttempt)) await punch(this.ctx);
    this.liveness.restart(this.now(), this.path.reAdded ? 0 : (p?.txBytes ?? 0));
    if (this.path.via === 'direct') {
      this.reason = null;
      if (wasAttempt) this.directAfterMs = this.now() - wasAttempt.readyAt;
    }
    this.deps.changed();
  }

  /**
   * Get ready for the punch without sending anything (setting an endpoint sends nothing), then
   * say so. Whatever the peer sends from now on finds us expecting it: a peer entry that is not
   * about to be re-added, pointing where the peer will be.
   */
  private async prepare(cmd: PreparePathCommand, p: PeerState | undefined): Promise<void> {
    // A tcp-relay path's endpoint is the shim's local port, not the relay's address the hub names.
    const fallback = cmd.fallback && this.path.via === 'relay' && cmd.fallback.relayId === this.path.relayId ? (this.path.endpoint ?? cmd.fallback.endpoint) : null;
    if (!this.path.hasEntry) {
      this.path = nonePath(() => this.lastAttemptFailed);
      await this.ensure(undefined);
    }
    this.lastAttemptFailed = false;
    const now = this.now();
    // Without a session the punch is a handshake initiation, and wireguard-go sends at most one per
    // 5 s (REKEY_TIMEOUT): right after a failed LAN attempt it would send nothing toward the next
    // candidate. A re-added peer starts with a clean handshake state.
    const readd = !fallback && (p?.lastHandshakeMs ?? 0) < now - SESSION_MS;
    const kind = kindOf(cmd.candidate.kind);
    // Roles matter for a handshake (attempt.ts): with a session the punches are keepalives, and
    // either side may send first. Except toward a mapped port, from the relay as much as from
    // nothing: the mapped side's own packet toward the peer would take the conntrack tuple the
    // peer's packet through the mapping needs (candidates/mapped.ts), so it sends only once it heard.
    const ordered = readd || (fallback !== null && kind.responderOpensNat === false);
    const role: AttemptRole = ordered && cmd.initiates !== undefined ? (cmd.initiates ? 'initiator' : 'responder') : 'both';
    if (readd) await this.deps.device.set({ peers: [{ publicKey: this.key, remove: true }] });
    // From the relay, the relay keeps carrying our data until the punch borrows the direct path.
    // With a role, the re-added peer gets no addresses yet: no packet of ours can make it initiate.
    if (!fallback) await this.deps.device.set({ peers: [{ publicKey: this.key, ...(role === 'both' ? { allowedIps: this.info.allowedIps } : {}), endpoint: cmd.candidate.endpoint, persistentKeepalive: 0 }] });
    // The responder's NAT is open before it says ready, so the initiator's one initiation gets in.
    // Across NATs, with a TTL that dies before the peer's router, every side opens first: then no
    // punch is the first packet at a router that takes unsolicited WAN input (punch-ttl.ts), and
    // either order works, whichever router leaks. Without such a TTL, the hub asks the side behind
    // a leaky router to open first (openFirst), also without a role: its packet must leave before
    // the peer's arrives.
    const ttl = kind.crossesNat ? (this.deps.punchTtl ?? NO_PUNCH_TTL) : NO_PUNCH_TTL;
    await ttl.settled();
    // Never toward a mapped port's peer: the mapping is open already (candidates/mapped.ts says why a packet of ours would hurt).
    const opened = kind.responderOpensNat !== false && (role === 'responder' || ttl.ttl !== null || cmd.openFirst === true);
    if (opened) await openNat(this.deps.device, cmd.candidate.endpoint, ttl);
    this.attempt = readyAttempt({
      role,
      seq: cmd.seq,
      kind,
      candidate: cmd.candidate.endpoint,
      fallback,
      windowMs: cmd.windowMs,
      holdMs: cmd.holdMs,
      now,
      // A re-added peer counts from zero: everything it authenticates came in this attempt. From
      // the relay nothing of ours changed, so this reading is the baseline; otherwise the next one.
      baselineRx: readd ? 0 : fallback ? (p?.rxBytes ?? 0) : null,
    });
    this.deps.log.debug({ peer: this.info.name, seq: cmd.seq, candidate: cmd.candidate.endpoint.toString(), kind: cmd.candidate.kind, fallback: fallback?.toString() ?? null, readd, role, opened, ttl: ttl.ttl }, 'attempt ready');
    this.reason = null;
    this.deps.emit({ type: 'path-event', event: 'ready', publicKey: this.key, seq: cmd.seq, opened });
    this.deps.changed();
  }

  /** Called with a fresh reading of the device: every 50 ms while busy, else about once a second. */
  async tick(p: PeerState | undefined, now: number): Promise<void> {
    const grew = this.liveness.observe(p?.rxBytes ?? 0, p?.txBytes ?? 0, now);
    if (this.attempt) return this.feed({ type: 'observe', peer: p, relay: this.path.relay }, now);
    await this.path.tick(this.ctx, p, grew, now);
    if (!this.path.watched) return;
    const verdict = this.liveness.check(now, p?.txBytes ?? 0, this.deps.keepalive());
    if (verdict?.type === 'probe') {
      const to = LivenessProbe.target(this.info.allowedIps);
      if (to) this.deps.probe?.(to);
    }
    if (verdict?.type === 'dead') {
      const dead = verdict.reason;
      this.reason = dead;
      this.deps.emit({ type: 'path-event', event: 'lost', publicKey: this.key, seq: this.path.seq });
      this.deps.changed();
    }
  }

  private async feed(input: AttemptInput, now: number): Promise<void> {
    const at = this.attempt;
    if (!at) return;
    const step = stepAttempt(at, input, now);
    this.attempt = step.attempt;
    for (const e of step.effects) await this.effect(at.seq, e, now);
    if (this.attempt?.phase !== at.phase) this.deps.changed();
  }

  private async effect(seq: number, e: AttemptEffect, now: number): Promise<void> {
    switch (e.type) {
      case 'punch':
        return punch(this.ctx, e.endpoint);
      case 'point':
        return point(this.ctx, e.endpoint);
      case 'measure': {
        const after = (await this.deps.device.get()).peers.find((x) => x.publicKey === this.key);
        return this.feed({ type: 'measured', peer: after }, now);
      }
      case 'heard':
        this.deps.emit({ type: 'path-event', event: 'heard', publicKey: this.key, seq, endpoint: e.endpoint, afterMs: e.afterMs });
        return;
      case 'unheard':
        this.reason = e.reason;
        this.lastAttemptFailed = true;
        this.deps.emit({ type: 'path-event', event: 'unheard', publicKey: this.key, seq });
        return;
      case 'abandon': {
        // The hub went away: keep what was committed.
        const back = this.path.endpoint;
        await this.deps.device.set({ peers: [{ publicKey: this.key, allowedIps: this.info.allowedIps, ...(back ? { endpoint: back } : {}), persistentKeepalive: this.deps.keepalive() }] });
        this.deps.changed();
        return;
      }
    }
  }
}
