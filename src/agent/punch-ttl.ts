import { run } from '../core/exec.js';
import type { Logger } from '../core/log.js';
import { IpAddress } from '../core/net/address.js';
import type { Endpoint } from '../core/net/endpoint.js';

/**
 * The first packet of a hole punch with a TTL just large enough to leave through our own NATs,
 * and too small to reach the peer's router.
 *
 * Why (issue 11, "leaky routers"): a router that accepts unsolicited packets on its WAN side
 * (the lab's `restricted-leaky`) confirms a conntrack entry for the first punch that reaches it
 * before its own host has sent; the host's packet toward that peer then gets another public
 * port, which the peer's NAT filters out, and every later punch refreshes the poisoned entry.
 * Lab links have no delay, so whichever side punches first poisons the other's router. Ordering
 * alone (the leaky side sends first) cannot help two leaky routers: the first packet to leave
 * lands on the other router. A packet that dies in between opens our own NAT and touches nothing
 * on the far side, so both sides can open first, whichever router leaks. Measured in the lab
 * (bench/leaky.ts, NOTES-leaky.md): two leaky routers with a router between them (ispPair)
 * went direct on the first attempt in 5 of 5 runs (the hub's figure 271 ms median, two home
 * routers 327 ms in the same run); without a router between them no TTL can work (ttlFromHops)
 * and they are relayed (0 of 5 direct).
 *
 * How: WireGuard owns the socket, so the agent (root) sets the TTL in nftables, for one
 * destination, only while the opening packet goes out. An element of a set with a timeout
 * selects it, so a crash between adding and removing the element leaves nothing behind after
 * 2 s.
 */

/** One table per host (namespace); the set's elements say which destination is opening now. */
export const PUNCH_TABLE = 'wgp2p_punch';
const ELEMENT_TIMEOUT = '2s';
/** The deepest NAT chain we look through (home router, carrier NAT, and one more). */
const MAX_HOPS = 4;

/** What answered a probe with TTL i+1: a hop's address (time exceeded), the hub itself, or nothing. */
export type Hop = IpAddress | 'target' | null;

/**
 * The TTL for an opening packet from what a hop-limited probe toward the hub met (`hops[i]`
 * answered TTL i+1). Our NATs are the hops with addresses that are not public (RFC 1918, RFC 6598
 * carrier NAT, link-local); the packet must pass the last of them and die at the next hop. At
 * least 2: even a public LAN has its router (a stateful firewall) at hop 1.
 *
 * Null (open at full TTL, as before) when nothing answered, or when the hub itself answered
 * within that TTL: then the next hop past our NATs is already a host on the internet's edge,
 * and so may be the peer's router. The lab's internet is one link that every router sits on,
 * so a packet that leaves one router reaches the other next: measured, TTL 2 there opened our
 * NAT and still landed on the leaky peer router (home x leaky relayed in 2 of 2 runs, where the
 * order alone went direct in 5 of 5). There only the order of the punch helps
 * (hub/pairs/initiator.ts).
 */
export function ttlFromHops(hops: readonly Hop[]): number | null {
  if (hops.every((h) => h === null)) return null;
  let lastInside = 0;
  hops.forEach((h, i) => {
    if (h instanceof IpAddress && !h.isPublic()) lastInside = i + 1;
  });
  const ttl = Math.max(2, lastInside + 1);
  if (hops.slice(0, ttl).includes('target')) return null;
  return ttl;
}

/** `ping -t N` prints "From 192.168.10.1 icmp_seq=1 Time to live exceeded" for the hop that dropped it, "64 bytes from …" when the target answered. */
export function parseProbe(stdout: string): Hop {
  if (/^\d+ bytes from /m.test(stdout)) return 'target';
  const m = /^From (\S+?)(?: \([^)]*\))?:? icmp_seq=\d+ Time to live exceeded/m.exec(stdout);
  if (!m) return null;
  try {
    return IpAddress.parse(m[1]);
  } catch {
    return null;
  }
}

/** Probes the hops toward `target` (the hub) with one ICMP echo per TTL, all at once; about 1 s at most. */
export async function probeHops(target: IpAddress): Promise<Hop[]> {
  if (target.family !== 4) return [];
  const probe = async (ttl: number): Promise<Hop> => {
    const r = await run('ping', ['-n', '-c', '1', '-W', '1', '-t', String(ttl), target.toString()], { allowFail: true, timeoutMs: 3000 }).catch(() => undefined);
    return r ? parseProbe(r.stdout) : null;
  };
  return Promise.all(Array.from({ length: MAX_HOPS }, (_, i) => probe(i + 1)));
}

export interface PunchTtl {
  /** The TTL opening packets get, or null: open at full TTL (nothing known, or nftables missing). */
  readonly ttl: number | null;
  /** Resolves once a TTL being learned is known. */
  settled(): Promise<void>;
  /** Runs `send` with packets toward `endpoint` limited to the TTL; without one, just runs it. */
  limited<T>(endpoint: Endpoint, send: () => Promise<T>): Promise<T>;
}

export const NO_PUNCH_TTL: PunchTtl = { ttl: null, settled: () => Promise.resolve(), limited: (_e, send) => send() };

/** The nftables side: a table with one set and one rule, rewritten when the TTL changes. */
export class NftPunchTtl implements PunchTtl {
  private current: number | null = null;

  private constructor(private readonly log: Logger) {}

  get ttl(): number | null {
    return this.current;
  }

  /** Undefined where nftables cannot be used (not root, no nft): opening packets keep their TTL. */
  static async create(log: Logger): Promise<NftPunchTtl | undefined> {
    const r = await run('nft', ['list', 'tables'], { allowFail: true }).catch(() => ({ code: 1 }));
    if (r.code !== 0) {
      log.warn('nft is not usable: hole punches toward routers that accept unsolicited packets may fail (issue 11)');
      return undefined;
    }
    return new NftPunchTtl(log);
  }

  private learning: Promise<void> = Promise.resolve();

  /** Resolves once the TTL being learned is known (an attempt right after start or a network change waits for it, about 1 s at most). */
  settled(): Promise<void> {
    return this.learning;
  }

  /** Learns the TTL from the hops toward the hub (at start and after a network change), in the background. */
  learn(hub: IpAddress): void {
    this.learning = this.learning.then(() => this.relearn(hub)).catch((err: unknown) => this.log.warn({ err }, 'could not learn the opening-packet TTL'));
  }

  private async relearn(hub: IpAddress): Promise<void> {
    const hops = await probeHops(hub);
    const ttl = ttlFromHops(hops);
    if (ttl === this.current) return;
    if (ttl === null) {
      this.current = null;
      this.log.info({ hops: hops.map(String) }, 'no TTL is known to stop before a peer: hole punches open at full TTL');
      return;
    }
    const script = [
      `table ip ${PUNCH_TABLE} {}`,
      `delete table ip ${PUNCH_TABLE}`,
      `table ip ${PUNCH_TABLE} {`,
      `  set opening { type ipv4_addr . inet_service; flags timeout; }`,
      `  chain output {`,
      `    type filter hook output priority mangle; policy accept;`,
      `    ip daddr . udp dport @opening ip ttl set ${ttl}`,
      `  }`,
      `}`,
    ].join('\n');
    const r = await run('nft', ['-f', '-'], { input: script, allowFail: true });
    if (r.code !== 0) {
      this.log.warn({ err: r.stderr.trim() }, 'could not install the opening-packet TTL rule: hole punches open at full TTL');
      this.current = null;
      return;
    }
    this.current = ttl;
    this.log.info({ ttl, hops: hops.map(String) }, 'hole punches open with a limited TTL');
  }

  async limited<T>(endpoint: Endpoint, send: () => Promise<T>): Promise<T> {
    if (this.current === null || endpoint.family !== 4) return send();
    const element = `{ ${endpoint.address} . ${endpoint.port} timeout ${ELEMENT_TIMEOUT} }`;
    const added = await run('nft', ['add', 'element', 'ip', PUNCH_TABLE, 'opening', element], { allowFail: true });
    try {
      return await send();
    } finally {
      if (added.code === 0) await run('nft', ['delete', 'element', 'ip', PUNCH_TABLE, 'opening', `{ ${endpoint.address} . ${endpoint.port} }`], { allowFail: true });
    }
  }

  /** A clean exit leaves no table behind. */
  async close(): Promise<void> {
    if (this.current === null) return;
    this.current = null;
    await run('nft', ['delete', 'table', 'ip', PUNCH_TABLE], { allowFail: true });
  }
}
