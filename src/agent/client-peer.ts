import { realClock, type Cancel, type Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { Endpoint } from '../core/net/endpoint.js';
import type { PeerStateName } from '../core/paths.js';
import type { AgentSettings, PeerInfo, PeerReport } from '../core/protocol.js';
import type { WireGuardDevice } from '../core/wireguard/device.js';
import type { PeerState } from '../core/wireguard/uapi.js';

/**
 * One plain client (a phone running only a WireGuard app) as this agent serves it. The client's
 * config already points at us and keeps a keepalive toward us; the hub tells us where it sees the
 * client, we point there and make WireGuard send, so the client's NAT lets our packets in.
 * A client cannot move to a relay: if direct is impossible it has its proxied config.
 */

export interface ClientPeerDeps {
  device: WireGuardDevice;
  settings(): AgentSettings;
  /** This agent chose proxied mode: clients reach it through the hub, no peer entry here. */
  proxied(): boolean;
  changed(): void;
  log: Logger;
  /** How long a direct attempt may take before it counts as failed (2 s: a lab handshake takes ~20 ms). */
  attemptMs: number;
  /** Default: the real one. */
  clock?: Clock;
}

export class ClientPeer {
  /** The hub-reported endpoint we last applied: only a change of it moves the device's endpoint. */
  private appliedEndpoint: Endpoint | null = null;
  private keepalive = -1;
  private state: PeerStateName = 'unknown';
  private attemptStartedAt = 0;
  private rxAtAttempt = 0;
  directAfterMs: number | null = null;
  reason: string | null = null;
  private failures = 0;
  private retry?: Cancel;
  private hubMode = false;
  private readonly clock: Clock;

  constructor(
    public info: PeerInfo,
    private readonly deps: ClientPeerDeps,
  ) {
    this.clock = deps.clock ?? realClock;
  }

  get key(): string {
    return this.info.publicKey;
  }

  get busy(): boolean {
    return this.state === 'trying';
  }

  get viaHub(): boolean {
    return this.hubMode;
  }

  show(): PeerStateName {
    return this.state;
  }

  stop(): void {
    this.cancelRetry();
  }

  private cancelRetry(): void {
    this.retry?.();
    this.retry = undefined;
  }

  report(p: PeerState | undefined): PeerReport {
    return {
      publicKey: this.key,
      path: this.state,
      endpoint: p?.endpoint ?? this.appliedEndpoint,
      handshakeAgeMs: p && p.lastHandshakeMs > 0 ? Math.max(0, this.clock.now() - p.lastHandshakeMs) : null,
      rxBytes: p?.rxBytes ?? 0,
      txBytes: p?.txBytes ?? 0,
      directAfterMs: this.directAfterMs,
      reason: this.reason,
    };
  }

  private fresh(info: PeerInfo): boolean {
    return info.handshakeAgeMs !== null && info.handshakeAgeMs <= this.deps.settings().staleAfterSec * 1000;
  }

  /** `p`: the peer as the agent read the device for this message. */
  async apply(info: PeerInfo, isNew: boolean, p: PeerState | undefined): Promise<void> {
    this.info = info;
    if (this.deps.proxied()) {
      if (!this.hubMode) {
        this.hubMode = true;
        this.cancelRetry();
        await this.deps.device.set({ peers: [{ publicKey: this.key, remove: true }] });
        this.set('proxied', null);
      }
      return;
    }
    if (this.hubMode) {
      this.hubMode = false;
      isNew = true;
      this.appliedEndpoint = null;
      this.keepalive = -1;
    }
    const keepalive = this.fresh(info) ? this.deps.settings().peerKeepalive : 0;
    const endpointChanged = info.endpoint !== null && !info.endpoint.equals(this.appliedEndpoint);
    if (!isNew && !endpointChanged && keepalive === this.keepalive) return;
    if (keepalive === 0) {
      // The client has been silent at the hub for staleAfterSec: stop spending keepalives on it.
      await this.deps.device.set({ peers: [{ publicKey: this.key, allowedIps: info.allowedIps, persistentKeepalive: 0, ...(endpointChanged ? { endpoint: info.endpoint! } : {}) }] });
      this.keepalive = 0;
      this.appliedEndpoint = info.endpoint ?? this.appliedEndpoint;
      this.set(info.handshakeAgeMs === null ? 'unknown' : 'stale', null);
      return;
    }
    await this.attempt(endpointChanged, p);
  }

  /** This device moved: whatever the client's NAT had open for our old address is gone. */
  async retryNow(p: PeerState | undefined): Promise<void> {
    if (this.keepalive > 0 && !this.hubMode) await this.attempt(false, p);
  }

  /**
   * Points the peer at the hub-reported endpoint and makes WireGuard send at once. Measured in the
   * lab: setting an endpoint sends nothing; a keepalive interval going from 0 to non-zero sends a
   * keepalive (or a handshake initiation) within ~5 ms. So one UAPI set clears and sets it again.
   *
   * Unless the client got here first: a client that reaches us on its own (our router maps our
   * port, or forwards like a full cone) often handshakes before the hub's push arrives, from the
   * address the hub sees it at but, behind a symmetric NAT, from another port. WireGuard has then
   * moved the peer to that port, and the hub's port (the client's mapping toward the hub, which
   * its NAT does not open to us) would only take that away. Measured in the lab (portmap-client):
   * overwriting it left the device sending into the client's NAT until the client's next
   * keepalive, 25 s later, and the attempt failed meanwhile.
   */
  private async attempt(withEndpoint: boolean, before: PeerState | undefined): Promise<void> {
    const info = this.info;
    const k = this.deps.settings().peerKeepalive;
    this.cancelRetry();
    const now = this.clock.now();
    const heard = this.heardFromClient(before, now);
    const setEndpoint = withEndpoint && info.endpoint !== null && !heard;
    await this.deps.device.set({
      peers: [
        { publicKey: info.publicKey, allowedIps: info.allowedIps, ...(setEndpoint ? { endpoint: info.endpoint! } : {}), persistentKeepalive: 0 },
        { publicKey: info.publicKey, persistentKeepalive: k },
      ],
    });
    if (withEndpoint) this.appliedEndpoint = info.endpoint;
    this.keepalive = k;
    this.attemptStartedAt = now;
    this.rxAtAttempt = before?.rxBytes ?? 0;
    if (heard) {
      this.failures = 0;
      this.directAfterMs = 0;
      this.set('direct', null);
    } else this.set('trying', null);
  }

  /**
   * The client handshook with us directly within the last attempt window, from the public address
   * the hub sees it at now: that is this network of the client's, and the path works. (A handshake
   * from another address is from a network the client has left.)
   */
  private heardFromClient(p: PeerState | undefined, now: number): boolean {
    const seen = this.info.endpoint;
    if (!p?.endpoint || !seen || p.lastHandshakeMs <= 0) return false;
    return p.endpoint.address.equals(seen.address) && now - p.lastHandshakeMs <= this.deps.attemptMs;
  }

  /**
   * Decides the attempt from the device: a handshake or received bytes after it means the path
   * works. A failed attempt goes on watching until the retry: the client's packets that prove the
   * path often come later (a client whose config names our mapped port handshakes when it comes
   * up, or when its user regenerates the config), and waiting for the retry's window to catch one
   * left it "impossible" for up to a minute. Anything this peer receives came from the client
   * directly: its traffic through the hub arrives on the hub's peer.
   */
  tick(p: PeerState | undefined, now: number): void {
    if (this.state !== 'trying' && this.state !== 'impossible') return;
    if (p && (p.lastHandshakeMs >= this.attemptStartedAt || p.rxBytes > this.rxAtAttempt)) {
      this.cancelRetry();
      this.failures = 0;
      this.directAfterMs = now - this.attemptStartedAt;
      this.set('direct', null);
    } else if (this.state === 'trying' && now - this.attemptStartedAt > this.deps.attemptMs) {
      this.failures++;
      this.set('impossible', this.failureReason());
      // Keep trying with backoff (5 s, 10 s, … 60 s): the client's network may change.
      const delay = Math.min(60_000, 5000 * 2 ** Math.min(4, this.failures - 1));
      this.retry = this.clock.after(delay, () => {
        void this.deps.device
          .get()
          .then((d) => this.attempt(false, d.peers.find((x) => x.publicKey === this.key)))
          .catch(() => undefined);
      });
    }
  }

  private failureReason(): string {
    const info = this.info;
    const port = info.endpoint?.port ?? null;
    const why =
      info.listenPort !== null && port !== null && port !== info.listenPort
        ? `its NAT changed the port (${info.listenPort} -> ${port}), so it maps per destination (symmetric)`
        : 'no handshake on the direct path';
    return `direct impossible from this network (${why}); use ${info.name}.proxied.conf`;
  }

  private set(path: PeerStateName, reason: string | null): void {
    const changed = this.state !== path;
    this.state = path;
    this.reason = reason;
    if (changed) {
      this.deps.log.info({ peer: this.info.name, path, reason, directAfterMs: path === 'direct' ? this.directAfterMs : undefined }, 'path');
      this.deps.changed();
    }
  }
}
