import { readFileSync, writeFileSync } from 'node:fs';
import { run, type RunResult } from '../core/exec.js';
import { IpAddress, type Family } from '../core/net/address.js';

/**
 * The relay's kernel fast path. Userspace forwarding in Node costs one system call per datagram
 * (measured: ~0.57 Gbit/s on one core). Once both sides of an allocation are confirmed, the
 * kernel forwards the pair: to the other side, from the relay port that side knows.
 *
 * The per-pair state is found through nftables maps keyed by the exact 5-tuples, not by a list of
 * rules: the hot path is a hash lookup however many pairs are installed, and adding a pair is one
 * `nft` run. Datagrams from any other source or port miss the maps and still reach the userspace
 * sockets, where they are checked as before; so does a handshake from a node's new port.
 *
 * Two ways to forward (`mode`):
 *   - 'nat': DNAT/SNAT by conntrack in the prerouting/postrouting hooks, routed and counted in the
 *     forward hook. Conntrack entries made before a change must be flushed (see flush()).
 *   - 'ingress': a stateless rewrite at the ingress hook of the interface that holds the relay
 *     address: source, destination and ports are set in place and the datagram is sent out with
 *     `fwd` (neighbour output to the route's next hop), skipping conntrack, routing and the
 *     netfilter hooks of the host. Nothing is tracked, so nothing needs flushing.
 *
 * One KernelPath serves one relay address, so one family: a relay with an address of each family
 * has up to two (forAddresses()), in tables of their own. IPv6 has the ingress mode only (`fwd ip6`
 * in a netdev table keyed by ipv6_addr); the conntrack NAT mode exists for IPv4 alone, so where
 * ingress cannot be set up for an IPv6 address its pairs forward in userspace. A bridged pair
 * (one side on each family) never comes here: the kernel would have to translate between the
 * families, and neither mode does.
 */

/** Stem of the IPv4 table's name (ip or netdev family, by mode). */
export const RELAY_TABLE = 'wgp2p_relay';
/** Stem of the IPv6 table's name (netdev family, ingress mode). */
export const RELAY_TABLE6 = 'wgp2p_relay6';
export type KernelMode = 'nat' | 'ingress';

/**
 * The table of the relay whose port range starts at `port`: two relays on one host (the hub's
 * and a `relay run`, or two of those) have ranges of their own, so tables of their own, and each
 * deletes only its own on start and on close.
 */
export function relayTable(family: Family, port: number): string {
  return `${family === 6 ? RELAY_TABLE6 : RELAY_TABLE}_${port}`;
}

/**
 * Only names of this shape go into an nft script: an interface name (at most 15 bytes, IFNAMSIZ)
 * is nearly free-form in Linux, and a quote in one would end the string it is written in.
 */
const SAFE_IFNAME = /^[A-Za-z0-9_.@:+-]{1,15}$/;

export interface Leg {
  ip: IpAddress;
  port: number;
  /** The relay port this node sends to. */
  relayPort: number;
}

export interface KernelCounters {
  ab: { packets: number; bytes: number };
  ba: { packets: number; bytes: number };
}

interface Installed {
  /** Name stem of the pair's two counter objects (allocation ids are arbitrary text, nft names are not). */
  counter: string;
  a: Leg;
  b: Leg;
}

export interface KernelPathOptions {
  /** Default 'ingress' (measured faster); it needs the relay address on a local interface. */
  mode?: KernelMode;
  /** The first port of the relay's range: it names the relay's tables (relayTable()). */
  port: number;
}

/** At most this many nft/conntrack processes at once: a thousand pairs confirming together must not fork a thousand. */
const MAX_CHILDREN = 4;

export class KernelPath {
  private installed = new Map<string, Installed>();
  private nextCounter = 0;
  private running = 0;
  private waiting: (() => void)[] = [];

  private constructor(
    private readonly relayIp: IpAddress,
    readonly mode: KernelMode,
    /** The table's name (relayTable()). */
    readonly tableName: string,
  ) {}

  /** The relay address this path forwards for: the destination it matches, the source it writes. */
  get address(): IpAddress {
    return this.relayIp;
  }

  /** The address family of the relay address, and of every leg this path forwards. */
  get family(): Family {
    return this.relayIp.family;
  }

  private get table(): string {
    return `${this.relayIp.family === 4 && this.mode === 'nat' ? 'ip' : 'netdev'} ${this.tableName}`;
  }

  /** The header fields of this path's family, as nft names them. */
  private get l3(): 'ip' | 'ip6' {
    return this.relayIp.family === 6 ? 'ip6' : 'ip';
  }

  /**
   * Sets up the table, or returns undefined where the kernel path cannot be used (see tryCreate()
   * for why not).
   */
  static async create(relayIp: IpAddress, opts: KernelPathOptions): Promise<KernelPath | undefined> {
    return (await KernelPath.tryCreate(relayIp, opts)).kernel;
  }

  /**
   * A kernel path per relay address that can have one, and why each other address forwards in
   * userspace (to be logged once, where the relay starts).
   */
  static async forAddresses(addresses: readonly IpAddress[], opts: KernelPathOptions): Promise<{ kernels: KernelPath[]; userspace: { address: IpAddress; reason: string }[] }> {
    const kernels: KernelPath[] = [];
    const userspace: { address: IpAddress; reason: string }[] = [];
    for (const address of addresses) {
      const r = await KernelPath.tryCreate(address, opts);
      if (r.kernel) kernels.push(r.kernel);
      else userspace.push({ address, reason: r.reason });
    }
    return { kernels, userspace };
  }

  /**
   * Sets up the table, or says why the relay forwards in userspace only: not root, or nftables
   * refused the table (for IPv6: the address is on no local interface, the kernel lacks `fwd ip6`,
   * or nat mode was asked for, which is IPv4 only). None of these is an error: the userspace path
   * works everywhere, only slower. For IPv4, ingress mode (the default) falls back to nat mode
   * where it cannot be set up (the relay address is on no local interface, or the kernel lacks the
   * netdev family or `fwd`); `mode` tells which one runs.
   */
  static async tryCreate(relayIp: IpAddress, opts: KernelPathOptions): Promise<{ kernel: KernelPath; reason?: undefined } | { kernel: undefined; reason: string }> {
    // Only an address value, written by its own toString(), goes into a script: a caller's text
    // (`--relay-address`) is parsed before it gets here, and checked again here in case it was not.
    const ip = relayIp instanceof IpAddress ? relayIp.unmapped() : undefined;
    if (!ip) return { kernel: undefined, reason: `the relay address "${String(relayIp)}" is not an IP address value: parse it (core/net) first` };
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) return { kernel: undefined, reason: `the relay's first port ${String(opts.port)} is not a port (1-65535): it names the relay's nftables table` };
    const name = relayTable(ip.family, opts.port);
    if (ip.scope() === 'unspecified') return { kernel: undefined, reason: `the relay address ${ip.toString()} is unspecified: the kernel path rewrites to one source address, so forwarding in userspace` };
    const mode = opts.mode ?? 'ingress';
    if (ip.family === 6 && mode === 'nat') return { kernel: undefined, reason: `the kernel's nat mode is IPv4 only and the relay address ${ip.toString()} is IPv6: its pairs forward in userspace (the ingress mode has an IPv6 variant)` };
    if (process.getuid?.() !== 0) return { kernel: undefined, reason: 'the kernel fast path needs root (nftables): forwarding in userspace' };
    let device: string | undefined;
    if (mode === 'ingress') {
      const r = await run('ip', ['-j', `-${ip.family}`, 'addr', 'show'], { allowFail: true }).catch(() => ({ code: 1, stdout: '' }));
      const links = r.code === 0 ? (JSON.parse(r.stdout) as { ifname: string; addr_info: { local: string }[] }[]) : [];
      device = links.find((l) => l.addr_info.some((x) => ip.equals(IpAddress.tryParse(x.local))))?.ifname;
      if (device !== undefined && !SAFE_IFNAME.test(device)) {
        if (ip.family === 6) return { kernel: undefined, reason: `the interface of the relay address is called ${JSON.stringify(device)}, which is not written into an nft script: IPv6 pairs forward in userspace` };
        device = undefined; // the nat mode names no interface
      }
      // Said before nftables is touched: IPv6 has no nat mode to fall back to.
      if (!device && ip.family === 6) return { kernel: undefined, reason: `the kernel's ingress path for IPv6 needs the relay address on a local interface and ${ip.toString()} is on none: IPv6 pairs forward in userspace` };
    }
    // A table left by this relay's last run (it crashed) would hold stale state: start from an
    // empty one. Only ours: another relay on this host has a table of its own.
    const stale = ip.family === 6 ? [`netdev ${name}`] : [`ip ${name}`, `netdev ${name}`];
    for (const t of stale) await run('nft', ['delete', 'table', ...t.split(' ')], { allowFail: true }).catch(() => undefined);
    if (device) {
      const l3 = ip.family === 6 ? 'ip6' : 'ip';
      const ruleset = `table netdev ${name} {
  map pairs { type ipv${ip.family}_addr . inet_service . inet_service : verdict; }
  chain ingress {
    type filter hook ingress device "${device}" priority -500; policy accept;
    ${l3} daddr ${ip} ${l3} saddr . udp sport . udp dport vmap @pairs
  }
}
`;
      const loaded = await run('nft', ['-f', '-'], { input: ruleset, allowFail: true }).catch((err: unknown) => ({ code: 1, stderr: (err as Error).message }));
      if (loaded.code === 0) return { kernel: new KernelPath(ip, 'ingress', name) };
      if (ip.family === 6) {
        return { kernel: undefined, reason: `nftables refused the IPv6 ingress table (${loaded.stderr.trim().split('\n')[0] || `exit ${loaded.code}`}; \`fwd ip6\` needs the netdev family and nft_fwd_netdev): IPv6 pairs forward in userspace` };
      }
    }
    const ruleset = `table ip ${name} {
  map to_peer { type ipv4_addr . inet_service . inet_service : ipv4_addr . inet_service; }
  map from_relay { type ipv4_addr . inet_service . ipv4_addr . inet_service : ipv4_addr . inet_service; }
  map counts { type ipv4_addr . inet_service . ipv4_addr . inet_service : counter; }
  chain prerouting {
    type nat hook prerouting priority dstnat - 5; policy accept;
    ip daddr ${ip} dnat ip to ip saddr . udp sport . udp dport map @to_peer
  }
  chain postrouting {
    type nat hook postrouting priority srcnat - 5; policy accept;
    snat ip to ip saddr . udp sport . ip daddr . udp dport map @from_relay
  }
  chain forwarding {
    type filter hook forward priority filter - 5; policy accept;
    counter name ip saddr . udp sport . ip daddr . udp dport map @counts
  }
}
`;
    const r = await run('nft', ['-f', '-'], { input: ruleset, allowFail: true }).catch((err: unknown) => ({ code: 1, stderr: (err as Error).message }));
    if (r.code !== 0) return { kernel: undefined, reason: `nftables refused the relay's table (${r.stderr.trim().split('\n')[0] || `exit ${r.code}`}): forwarding in userspace` };
    // Forwarding between two remote nodes is routing: the host must forward IPv4.
    if (readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() !== '1') writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
    return { kernel: new KernelPath(ip, 'nat', name) };
  }

  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= MAX_CHILDREN) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  private nft(script: string, allowFail = false): Promise<RunResult> {
    return this.limited(() => run('nft', ['-f', '-'], { input: script, allowFail }));
  }

  /** The pair's map elements; `forward` is the tuple a datagram from `from` has after DNAT. */
  private elements(inst: Installed): { toPeer: string[]; fromRelay: string[]; counts: string[] } {
    const R = this.relayIp;
    const { a, b, counter } = inst;
    const forward = (from: Leg, to: Leg) => `${from.ip} . ${from.port} . ${to.ip} . ${to.port}`;
    return {
      toPeer: [`${a.ip} . ${a.port} . ${a.relayPort} : ${b.ip} . ${b.port}`, `${b.ip} . ${b.port} . ${b.relayPort} : ${a.ip} . ${a.port}`],
      fromRelay: [`${forward(a, b)} : ${R} . ${b.relayPort}`, `${forward(b, a)} : ${R} . ${a.relayPort}`],
      counts: [`${forward(a, b)} : "${counter}ab"`, `${forward(b, a)} : "${counter}ba"`],
    };
  }

  /** Where `fwd` must hand a datagram for `ip`: the route's gateway, or `ip` itself when on-link. */
  private async nextHop(ip: IpAddress): Promise<{ via: string; dev: string }> {
    const r = await this.limited(() => run('ip', ['-j', 'route', 'get', ip.toString()]));
    const [route] = JSON.parse(r.stdout) as { gateway?: string; dev: string }[];
    // Both go into an nft script: the gateway as an address value, the device only if plainly named.
    const gateway = route.gateway === undefined ? ip : IpAddress.tryParse(route.gateway);
    if (!gateway || !SAFE_IFNAME.test(route.dev)) throw new Error(`the route to ${ip.toString()} (${JSON.stringify(route)}) is not one the kernel path writes into nft: the pair stays in userspace`);
    return { via: gateway.toString(), dev: route.dev };
  }

  async install(id: string, a: Leg, b: Leg): Promise<void> {
    if (a.ip.family !== this.family || b.ip.family !== this.family) throw new Error(`the IPv${this.family} kernel path cannot forward ${a.ip} <-> ${b.ip}: no translation between families in the kernel, the pair stays in userspace`);
    await this.remove(id);
    const inst: Installed = { counter: `c${this.nextCounter++}`, a, b };
    const T = this.table;
    if (this.mode === 'ingress') {
      const R = this.relayIp;
      const L = this.l3;
      const [hopA, hopB] = await Promise.all([this.nextHop(a.ip), this.nextHop(b.ip)]);
      const rule = (name: string, to: Leg, via: { via: string; dev: string }, fromRelayPort: number) =>
        `add rule ${T} ${name} counter name "${name}" ${L} saddr set ${R} ${L} daddr set ${to.ip} udp sport set ${fromRelayPort} udp dport set ${to.port} fwd ${L} to ${via.via} device "${via.dev}"`;
      const ab = `${inst.counter}ab`;
      const ba = `${inst.counter}ba`;
      await this.nft(
        [
          `add counter ${T} ${ab}`,
          `add counter ${T} ${ba}`,
          `add chain ${T} ${ab}`,
          `add chain ${T} ${ba}`,
          rule(ab, b, hopB, b.relayPort),
          rule(ba, a, hopA, a.relayPort),
          `add element ${T} pairs { ${a.ip} . ${a.port} . ${a.relayPort} : jump ${ab}, ${b.ip} . ${b.port} . ${b.relayPort} : jump ${ba} }`,
        ].join('\n') + '\n',
      );
      this.installed.set(id, inst);
      return;
    }
    const e = this.elements(inst);
    await this.nft(
      [
        `add counter ${T} ${inst.counter}ab`,
        `add counter ${T} ${inst.counter}ba`,
        `add element ${T} counts { ${e.counts.join(', ')} }`,
        `add element ${T} to_peer { ${e.toPeer.join(', ')} }`,
        `add element ${T} from_relay { ${e.fromRelay.join(', ')} }`,
      ].join('\n') + '\n',
    );
    this.installed.set(id, inst);
  }

  /**
   * Deletes the conntrack entries of both relay ports, both directions. Entries made while the
   * pair went through our sockets carry no NAT and would keep steering it to userspace; entries
   * made by the kernel path carry NAT and would keep steering it to the old ports after the maps
   * changed. Either way they live until they time out unless deleted.
   */
  async flush(a: Leg, b: Leg): Promise<void> {
    if (this.mode === 'ingress') return; // nothing of the pair is tracked
    const R = this.relayIp;
    await Promise.all(
      [a.relayPort, b.relayPort].flatMap((port) => [
        this.limited(() => run('conntrack', ['-D', '-p', 'udp', '--orig-dst', R.toString(), '--dport', String(port)], { allowFail: true })),
        this.limited(() => run('conntrack', ['-D', '-p', 'udp', '--orig-src', R.toString(), '--sport', String(port)], { allowFail: true })),
      ]),
    );
  }

  /**
   * Takes the pair out of the maps and returns what the kernel forwarded for it, which would be
   * lost with its counters. The caller flushes conntrack (the kernel keeps NATed flows alive otherwise).
   */
  async remove(id: string): Promise<KernelCounters | undefined> {
    const inst = this.installed.get(id);
    if (!inst) return undefined;
    const counts = (await this.read(new Map([[id, inst]]))).get(id);
    this.installed.delete(id);
    const T = this.table;
    if (this.mode === 'ingress') {
      const { a, b } = inst;
      await this.nft(
        [
          `delete element ${T} pairs { ${a.ip} . ${a.port} . ${a.relayPort}, ${b.ip} . ${b.port} . ${b.relayPort} }`,
          ...['ab', 'ba'].flatMap((d) => [`delete chain ${T} ${inst.counter}${d}`, `delete counter ${T} ${inst.counter}${d}`]),
        ].join('\n') + '\n',
        true,
      );
      return counts;
    }
    const e = this.elements(inst);
    const keys = (xs: string[]) => xs.map((x) => x.replace(/ : .*$/, '')).join(', ');
    await this.nft(
      [
        `delete element ${T} to_peer { ${keys(e.toPeer)} }`,
        `delete element ${T} from_relay { ${keys(e.fromRelay)} }`,
        `delete element ${T} counts { ${keys(e.counts)} }`,
        `delete counter ${T} ${inst.counter}ab`,
        `delete counter ${T} ${inst.counter}ba`,
      ].join('\n') + '\n',
      true,
    );
    return counts;
  }

  /** Packets and bytes the kernel forwarded per installed allocation and direction, since it was installed. */
  counters(): Promise<Map<string, KernelCounters>> {
    return this.read(this.installed);
  }

  private async read(which: Map<string, Installed>): Promise<Map<string, KernelCounters>> {
    const out = new Map<string, KernelCounters>();
    if (which.size === 0) return out;
    const r = await this.limited(() => run('nft', ['list', 'counters', 'table', ...this.table.split(' ')], { allowFail: true }));
    const byName = new Map<string, { packets: number; bytes: number }>();
    for (const m of r.stdout.matchAll(/counter (\S+) \{\s*packets (\d+) bytes (\d+)/g)) byName.set(m[1], { packets: Number(m[2]), bytes: Number(m[3]) });
    for (const [id, inst] of which) {
      const zero = { packets: 0, bytes: 0 };
      const entry = { ab: { ...(byName.get(`${inst.counter}ab`) ?? zero) }, ba: { ...(byName.get(`${inst.counter}ba`) ?? zero) } };
      out.set(id, entry);
    }
    return out;
  }

  async close(): Promise<void> {
    this.installed.clear();
    await run('nft', ['delete', 'table', ...this.table.split(' ')], { allowFail: true }).catch(() => undefined);
  }
}
