import type { Logger } from '../core/log.js';
import type { Endpoint } from '../core/net/endpoint.js';
import type { WireGuardDevice } from '../core/wireguard/device.js';
import type { DeviceState, PeerState } from '../core/wireguard/uapi.js';

/**
 * Reads the hub's WireGuard device over and over, and owns what it last saw of each peer: the
 * endpoint a node's NAT maps it to (the hub's one observation, no STUN), its last handshake and
 * counters. It says when something changed that others act on; nothing else keeps a copy.
 *
 * Interval: 20 ms keeps the hub's share of a join in the tens of milliseconds; with many peers a
 * read costs more (≈10 ms of wall time at 1,000 peers with wireguard-go, ≈120 ms at 10,000), so
 * the interval stretches to 5× the last read's time, and to 100× the CPU the hub spent on it:
 * polling then uses at most 1 % of a core, half of issue 13's 2 % for the whole idle hub (its
 * timers, sockets and store take the rest). The cap of 500 ms bounds how late a roam is seen;
 * at 250 ms the cap, not the budget, set the interval at 1,000 peers, and the idle hub used
 * 2.2-2.6 % of a core. Reads cost the hub ≈ 0.05 ms at a few peers (kept UAPI connection, or
 * netlink), so small hubs still poll every 20 ms; at 1,000 idle peers a read costs ≈ 0.5 ms on
 * the kernel (netlink, unchanged peers reused) and ≈ 3 ms on wireguard-go (340 KB of text),
 * which stretches the interval to ≈ 50 and ≈ 300 ms.
 */

export interface DeviceWatchOptions {
  device: WireGuardDevice;
  /** Only peers that are nodes are watched (join keys, peers added by hand are not). */
  known(publicKey: string): boolean;
  /** A node is fresh while its last handshake is younger than this: agents keep keepalives toward fresh clients. */
  staleAfterMs(): number;
  /** A node's endpoint changed, or was seen for the first time. */
  onEndpoint(publicKey: string, endpoint: Endpoint, previous: Endpoint | undefined): void;
  /** What agents are told of a node changed: its endpoint or its freshness. */
  onPeer(publicKey: string, peer: PeerState): void;
  log: Logger;
  pollMs?: number;
}

const MAX_INTERVAL_MS = 500;
/** Polling may use this share of a core: the interval is at least the read's CPU time divided by it. */
const CPU_BUDGET = 0.01;

export class DeviceWatch {
  private last: DeviceState | undefined;
  private byKey = new Map<string, PeerState>();
  private fresh = new Set<string>();
  private timer?: NodeJS.Timeout;
  private polling = false;
  private stopped = false;
  private lastCostMs = 0;
  /** The CPU of the last few reads; their minimum is the read's own cost (see schedule). */
  private cpuSamples: number[] = [];
  readonly stats = { polls: 0, pollMsTotal: 0 };

  constructor(private readonly opts: DeviceWatchOptions) {}

  get meanPollMs(): number {
    return this.stats.polls ? this.stats.pollMsTotal / this.stats.polls : 0;
  }

  /** The peer as the last read saw it. */
  peer(publicKey: string): PeerState | undefined {
    return this.byKey.get(publicKey);
  }

  /** The last read, whole. */
  get state(): DeviceState | undefined {
    return this.last;
  }

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** A node went away: a new one with its key starts from nothing seen. */
  forget(publicKey: string): void {
    this.fresh.delete(publicKey);
  }

  private schedule(): void {
    if (this.stopped) return;
    // The minimum of the last reads: other work of the hub that ran while one read was in flight
    // (pushes during a join) must not stretch the interval just when endpoints matter most.
    const readCpuMs = this.cpuSamples.length ? Math.min(...this.cpuSamples) : 0;
    const interval = Math.min(MAX_INTERVAL_MS, Math.max(this.opts.pollMs ?? 20, 5 * this.lastCostMs, readCpuMs / CPU_BUDGET));
    this.timer = setTimeout(() => {
      this.poll()
        .catch((err: unknown) => this.opts.log.error({ err }, 'device read failed'))
        .finally(() => this.schedule());
    }, interval);
  }

  /** One read; what changed since the last one is reported before it returns. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    const t0 = performance.now();
    // The process's CPU while the read is in flight: on an idle hub that is the read's own cost.
    const cpu0 = process.cpuUsage();
    try {
      const dev = await this.opts.device.get();
      const before = this.byKey;
      const now = Date.now();
      const staleMs = this.opts.staleAfterMs();
      this.last = dev;
      this.byKey = new Map(dev.peers.map((p) => [p.publicKey, p]));
      for (const p of dev.peers) {
        const prev = before.get(p.publicKey)?.endpoint;
        const isFresh = p.lastHandshakeMs > 0 && now - p.lastHandshakeMs <= staleMs;
        const wasFresh = this.fresh.has(p.publicKey);
        const moved = p.endpoint !== undefined && !p.endpoint.equals(prev);
        // Whether the peer is a node is asked last: at 1,000 idle peers nothing changed for almost all.
        if ((!moved && isFresh === wasFresh) || !this.opts.known(p.publicKey)) continue;
        if (isFresh) this.fresh.add(p.publicKey);
        else this.fresh.delete(p.publicKey);
        if (moved) this.opts.onEndpoint(p.publicKey, p.endpoint!, prev);
        this.opts.onPeer(p.publicKey, p);
      }
    } finally {
      this.lastCostMs = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      this.cpuSamples.push((cpu.user + cpu.system) / 1000);
      if (this.cpuSamples.length > 8) this.cpuSamples.shift();
      this.stats.polls++;
      this.stats.pollMsTotal += this.lastCostMs;
      this.polling = false;
    }
  }
}
