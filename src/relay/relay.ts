import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { IpAddress } from '../core/net/address.js';
import { Endpoint } from '../core/net/endpoint.js';
import type { Logger } from '../core/log.js';
import { mac1Key } from '../core/wireguard/packet.js';
import { classifyDatagram } from './datagram.js';
import { KernelPath, type KernelCounters, type Leg } from './kernel-path.js';

/**
 * A relay for WireGuard datagrams it cannot decrypt. Each allocation serves one pair of nodes and
 * owns two UDP ports, one per side: A sends to portA and B receives from portB, and back.
 *
 * Not an open relay: a side only accepts datagrams from its node's public IP (as the hub sees it)
 * and only ever sends to that IP. Within that IP, which port is the node's is decided by evidence
 * that the other node's WireGuard accepted a handshake, not by mac1 alone: mac1 is keyed by a
 * *public* key, so anyone who can spoof the node's IP can make a valid one (or replay a genuine
 * initiation) from any port. So:
 *   - an initiation (valid mac1) from a new port only makes that port a *candidate*, remembered
 *     with the initiation's sender index;
 *   - a response names that index as its receiver index; only the other node can answer a
 *     genuine initiation (a forged or replayed one gets no answer), so a response that names a
 *     candidate *confirms* that candidate, and confirms the responder at the port it came from;
 *   - transport data is forwarded only between confirmed ports.
 * A confirmed side keeps its port until another port is confirmed this way (roaming inside one NAT
 * re-handshakes from the new port, and the other side answers).
 *
 * Handshake messages alone are not enough against someone who can spoof *both* nodes' IPs: a
 * forged initiation from a new port of A's IP and a forged response (valid mac1, naming it) from
 * a new port of B's IP would move both sides and black-hole the genuine pair. So a pair that is
 * carrying transport both ways (within ACTIVE_MS, 10 s) is not moved by a handshake: the new
 * ports become a *pending move*, and meanwhile transport is routed by its receiver index. The new
 * session's transport (the indices the handshake set up) goes between the new ports, everything
 * else between the confirmed ones, so a genuine roam flows at once and a forged one takes nothing
 * from the genuine pair. The move is made once the new port has carried transport of that session
 * and the old port has carried none for ACTIVE_MS: a node that roamed has left its old port, and
 * a node that keeps sending from it is still there. A pending move keeps the pair out of the
 * kernel (the kernel routes by 5-tuple, not by index), as a candidate does.
 *
 * Both families, and bridged: a relay has up to one address per family, and each side's socket is
 * on the relay address of its node's family, so an IPv6-only node and an IPv4-only node meet in
 * one allocation (one side on each family; only the port numbers tie the two sockets together).
 * Sources are compared as addresses, so the rules above hold for IPv6 as they do for IPv4. A
 * relay whose only IPv6 address is "::" (tests, the lab) serves IPv4 nodes on dual-stack sockets,
 * which report them as ::ffff:a.b.c.d; such a source is the IPv4 node.
 *
 * The kernel fast path takes a pair whose two sides are on one family and that family has a
 * KernelPath; a bridged pair stays here (the kernel would have to translate between families).
 */

export interface RelaySideSpec {
  publicKey: string;
  /** The node's public IP, of either family; the port is confirmed by a handshake answered through the relay. */
  ip: string | IpAddress;
}

export interface DirectionCounters {
  packets: number;
  bytes: number;
}

export interface DropCounters {
  /** Not shaped like a WireGuard message. */
  malformed: number;
  /** Not from the side's node IP. */
  wrongSource: number;
  /** Initiation or response whose mac1 is not made for the other side's key. */
  badMac1: number;
  /** Transport data from a port that is not confirmed, or while the other side has no confirmed port. */
  unconfirmed: number;
  /** Response or cookie reply whose receiver index names no recent initiation of the other side. */
  unknownIndex: number;
  /** Initiation reusing a recent initiation's index from another port: a replay, the first sighting wins. */
  replayed: number;
  /** Initiation while the other side has neither a confirmed port nor a candidate to send it to. */
  noDestination: number;
  /** unconfirmed + noDestination: the one figure earlier versions had, kept for existing readers. */
  notLatched: number;
}

export interface SideStats {
  /** The node's IP, canonical text. */
  ip: string;
  /** A handshake from this ip:port was answered while the pair was carrying transport: see "pending move" above. */
  moving: string | null;
  /** The relay address this side's socket is on (the node's family, or "::" for a dual-stack socket). */
  relayAddress: string;
  /** The confirmed ip:port (kept under this name for existing readers), or null. */
  latched: string | null;
  /** Ports seen initiating and not yet answered. */
  candidates: string[];
}

export interface AllocationStats {
  id: string;
  portA: number;
  portB: number;
  a: SideStats;
  b: SideStats;
  aToB: DirectionCounters;
  bToA: DirectionCounters;
  dropped: DropCounters;
  /** True while the kernel fast path forwards the pair. */
  kernel: boolean;
  idleMs: number;
}

interface Candidate {
  endpoint: Endpoint;
  index: number;
  /** performance.now() when first seen; read only for handshake messages, never per transport datagram. */
  seenAt: number;
}

/** Ports a handshake set up for a side of a busy pair, not yet moved to (see the header). */
interface PendingMove {
  endpoint: Endpoint;
  /** The receiver index on the new session's transport *from* this side (the peer's index). */
  sends: number;
  /** The receiver index on the new session's transport *toward* this side (its own index). */
  receives: number;
  /** Transport from the new port (counted on the datagram path, read by the sweeper). */
  heard: number;
  /** `heard` at the sweeper's last look, and when it last changed (performance.now()). */
  heardSeen: number;
  heardAt: number;
}

interface Side {
  publicKey: string;
  /** The node's IP (IPv4-mapped addresses unmapped); every endpoint of this side has it. */
  ip: IpAddress;
  /** The node's IP as this side's socket writes a source address and takes a destination. */
  socketText: string;
  /** The relay address the socket is bound to. */
  local: IpAddress;
  socket: Socket;
  port: number;
  /** mac1 key of the *other* side: handshake messages arriving here are addressed to it. */
  peerMac1Key: Buffer;
  confirmed?: Endpoint;
  /** Oldest first, at most MAX_CANDIDATES, none older than CANDIDATE_MS. */
  candidates: Candidate[];
  /** What was forwarded out of this side's socket, plus what the kernel forwarded toward it before it was taken back. */
  out: DirectionCounters;
  /** Transport datagrams accepted from the confirmed port (userspace; the sweeper adds the kernel's). */
  transportIn: number;
  /** What the kernel forwarded from this side's confirmed port, at the sweeper's last look. */
  kernelSeen: number;
  /** transportIn plus kernelSeen at the sweeper's last look, and when that last changed (performance.now()). */
  heardSeen: number;
  heardAt: number;
  pending?: PendingMove;
}

interface Allocation {
  id: string;
  a: Side;
  b: Side;
  /** Set by the sweeper when the forwarded-packet count moved, so the datagram path never reads the clock. */
  lastActive: number;
  packetsSeen: number;
  dropped: Omit<DropCounters, 'notLatched'>;
  /** The kernel path of the pair's family, when both sides are on it; a bridged pair has none. */
  kernel?: KernelPath;
  /** Legs the kernel forwards now (set once installed). */
  kernelLegs?: { a: Leg; b: Leg };
  /** Kernel changes for this pair run one after another, each deciding from the state at its turn. */
  kernelQueue: Promise<void>;
  /** Counts the pair's removals from the kernel: a sweep whose counter reading spans one must not use it (its counters restarted). */
  kernelEpoch: number;
}

/** A few handshakes in flight per side: WireGuard retries every 5 s with a fresh index. */
const MAX_CANDIDATES = 4;
/** Longer than WireGuard's 5 s retry, so a response to the previous try still finds its initiation. */
const CANDIDATE_MS = 10_000;
/**
 * A side heard within this long is "carrying transport". A WireGuard that received data and has
 * nothing to send sends a keepalive within KEEPALIVE_TIMEOUT (10 s), so a pair carrying data is
 * heard from both sides within 10 s. A WireGuard whose data goes unanswered (its NAT gave it a new
 * port) re-handshakes after KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s): by then its old port has
 * been silent for longer than this, even at the sweeper's resolution (ACTIVE_MS / 4), and that
 * handshake moves it at once, as before. Pairs idle between persistent keepalives (25 s) are not
 * busy either: for them a handshake still moves a side by itself.
 */
const ACTIVE_MS = 10_000;

export interface RelayOptions {
  /**
   * Where nodes send to and the ports bind: one or two addresses, at most one per family. A side
   * gets its socket on the address of its node's family ("::" as the IPv6 one also takes IPv4
   * nodes, on dual-stack sockets, when there is no IPv4 address).
   */
  addresses: readonly (string | IpAddress)[];
  /** Ports of both families come from this one range (a port is taken on one address at a time). */
  portMin: number;
  portMax: number;
  /** An allocation with no forwarded traffic for this long is released. */
  idleMs?: number;
  /** How recently a side must have carried transport to count as busy (default ACTIVE_MS; tests shorten it). */
  activeMs?: number;
  /**
   * Kernel forwarding for confirmed pairs (see kernel-path.ts), at most one per family, each for
   * one of `addresses`; pairs of a family without one, and bridged pairs, forward in userspace.
   */
  kernel?: KernelPath | readonly KernelPath[];
  onError?: (err: unknown) => void;
  /**
   * Debug lines for what the relay decides per allocation (a side confirmed, the pair into or out
   * of the kernel, the allocation released): a handful per allocation, none per datagram.
   */
  log?: Pick<Logger, 'debug'>;
  /**
   * A side's confirmed endpoint changed (its first confirmation included): `endpoint` is the
   * node's ip:port as the relay sees it, i.e. its NAT's mapping toward the relay.
   */
  onLatched?: (id: string, publicKey: string, endpoint: string) => void;
  /** An allocation is gone: idle expiry, or release() (close() releases every allocation). */
  onReleased?: (id: string, reason: 'idle' | 'released') => void;
}

/** What streamSide() found. */
export type StreamSide =
  | { readonly kind: 'ok'; readonly source: IpAddress; readonly relay: Endpoint }
  /** No such allocation (never made, or released). */
  | { readonly kind: 'unknown' }
  /** The allocation is another pair's: the node is not one of its sides. */
  | { readonly kind: 'not-owned' }
  /** The node's side was allocated for UDP (a node IP that is not loopback). */
  | { readonly kind: 'not-stream' };

export class RelayError extends Error {
  override name = 'RelayError';
}

const sameEndpoint = (x: Endpoint | undefined, y: Endpoint | undefined) => x !== undefined && x.equals(y);

/**
 * What a datagram's source text names. A socket writes an address one way for the life of the
 * process, and a relay hears from few addresses, so each text is parsed once.
 */
const sourceTexts = new Map<string, IpAddress | null>();

function sourceAddress(text: string): IpAddress | undefined {
  let a = sourceTexts.get(text);
  if (a === undefined) {
    if (sourceTexts.size >= 10_000) sourceTexts.clear(); // spoofed sources must not grow it without bound
    a = IpAddress.tryParse(text)?.unmapped() ?? null;
    sourceTexts.set(text, a);
  }
  return a ?? undefined;
}

export class Relay {
  private allocations = new Map<string, Allocation>();
  private usedPorts = new Set<number>();
  private sweeper: NodeJS.Timeout;
  readonly idleMs: number;
  private readonly activeMs: number;
  /** Ids being allocated (not yet in `allocations`): a second request for one is refused at once. */
  private allocating = new Set<string>();
  /** The addresses the ports bind to, at most one per family, IPv4 first. */
  readonly addresses: readonly IpAddress[];
  private readonly kernels: readonly KernelPath[];

  constructor(private readonly opts: RelayOptions) {
    this.addresses = relayAddresses(opts.addresses);
    const given = opts.kernel;
    this.kernels = given === undefined ? [] : given instanceof KernelPath ? [given] : [...given];
    for (const k of this.kernels) {
      if (!this.addresses.some((a) => a.equals(k.address))) throw new RelayError(`a kernel path for ${k.address.toString()} was given, and the relay's addresses are ${this.describe()}: give each kernel path the address of its family`);
      if (this.kernels.filter((x) => x.family === k.family).length > 1) throw new RelayError(`two kernel paths for IPv${k.family}: give at most one per family`);
    }
    this.idleMs = opts.idleMs ?? 120_000;
    this.activeMs = opts.activeMs ?? ACTIVE_MS;
    this.sweeper = setInterval(() => this.sweep(), Math.min(5000, this.idleMs / 2, this.activeMs / 4));
    this.sweeper.unref();
  }

  /**
   * The relay address a node of `ip`'s family sends to, or undefined when this relay has none it
   * could reach that node from: its own family's, else "::" for an IPv4 node.
   */
  addressFor(ip: IpAddress): IpAddress | undefined {
    const node = ip.unmapped();
    return this.addresses.find((a) => a.family === node.family) ?? this.addresses.find((a) => node.family === 4 && a.family === 6 && a.scope() === 'unspecified');
  }

  private describe(): string {
    return this.addresses.map((a) => `${a.toString()} (IPv${a.family})`).join(' and ');
  }

  /** The node's IP of a side spec, checked to be one this relay can exchange datagrams with. */
  private nodeIp(spec: RelaySideSpec, which: string): { ip: IpAddress; local: IpAddress } {
    const ip = (typeof spec.ip === 'string' ? parseIp(spec.ip, `side ${which}'s node IP`) : spec.ip).unmapped();
    const local = this.addressFor(ip);
    if (!local) {
      throw new RelayError(`side ${which}'s node IP ${ip.toString()} is IPv${ip.family} and this relay has no IPv${ip.family} address (it has ${this.describe()}): it could never reach that node; use a relay with an IPv${ip.family} address`);
    }
    return { ip, local };
  }

  /** The kernel path for a pair: both sides on one relay address of the nodes' own family (not bridged, not dual-stack, no stream side). */
  private kernelFor(a: Side, b: Side): KernelPath | undefined {
    if (!a.local.equals(b.local) || a.ip.family !== a.local.family || b.ip.family !== b.local.family) return undefined;
    // A stream side (stream-server.ts) sends from loopback; the kernel path NATs between the
    // relay's public address and the nodes', which loopback sources never pass (route_localnet).
    if (isStreamSide(a) || isStreamSide(b)) return undefined;
    return this.kernels.find((k) => k.address.equals(a.local));
  }

  private async kernelCounters(): Promise<Map<string, KernelCounters>> {
    const out = new Map<string, KernelCounters>();
    for (const m of await Promise.all(this.kernels.map((k) => k.counters()))) for (const [id, c] of m) out.set(id, c);
    return out;
  }

  async allocate(id: string, a: RelaySideSpec, b: RelaySideSpec): Promise<{ portA: number; portB: number }> {
    if (this.allocations.has(id) || this.allocating.has(id)) throw new RelayError(`allocation ${id} exists`);
    const ipA = this.nodeIp(a, 'A');
    const ipB = this.nodeIp(b, 'B');
    checkKey(a.publicKey);
    checkKey(b.publicKey);
    // Both ports are reserved before the first await: concurrent requests each see the others'
    // reservations, so a full relay refuses exactly the requests it has no room for, whatever the
    // interleaving and family (a port number is taken on one address at a time).
    const portA = this.reservePort();
    const portB = portA === undefined ? undefined : this.reservePort();
    if (portA === undefined || portB === undefined) {
      if (portA !== undefined) this.usedPorts.delete(portA);
      throw new RelayError(`no free relay port in ${this.opts.portMin}-${this.opts.portMax}`);
    }
    this.allocating.add(id);
    let sideA: Side;
    let sideB: Side;
    try {
      // openSide gives its port back when it fails; the other reservation is given back here.
      try {
        sideA = await this.openSide(portA, a.publicKey, ipA.ip, ipA.local, b.publicKey);
      } catch (err) {
        this.usedPorts.delete(portB);
        throw err;
      }
      try {
        sideB = await this.openSide(portB, b.publicKey, ipB.ip, ipB.local, a.publicKey);
      } catch (err) {
        this.closeSide(sideA);
        throw err;
      }
    } finally {
      this.allocating.delete(id);
    }
    const alloc: Allocation = {
      id,
      a: sideA,
      b: sideB,
      lastActive: Date.now(),
      packetsSeen: 0,
      dropped: { malformed: 0, wrongSource: 0, badMac1: 0, unconfirmed: 0, unknownIndex: 0, replayed: 0, noDestination: 0 },
      kernel: this.kernelFor(sideA, sideB),
      kernelQueue: Promise.resolve(),
      kernelEpoch: 0,
    };
    sideA.socket.on('message', (buf, rinfo) => this.onDatagram(alloc, sideA, sideB, buf, rinfo));
    sideB.socket.on('message', (buf, rinfo) => this.onDatagram(alloc, sideB, sideA, buf, rinfo));
    this.allocations.set(id, alloc);
    return { portA: sideA.port, portB: sideB.port };
  }

  /**
   * A node's public IP changed: accept the new one, and confirm its port again from a handshake.
   * The same IP again changes nothing (the port the relay confirmed is its own evidence). A new
   * IP of the other family is refused: the node was told a relay endpoint of its old family, and
   * the side's socket is on that family's address; the allocation must be made anew.
   */
  updateIp(id: string, publicKey: string, ip: string | IpAddress): void {
    const alloc = this.allocations.get(id);
    const side = alloc && [alloc.a, alloc.b].find((s) => s.publicKey === publicKey);
    if (!alloc || !side) throw new RelayError(`allocation ${id} has no side for that key`);
    const which = side === alloc.a ? 'A' : 'B';
    const next = this.nodeIp({ publicKey, ip }, which).ip;
    if (side.ip.equals(next)) return;
    if (!this.addressFor(next)?.equals(side.local)) {
      throw new RelayError(`side ${which}'s node moved from IPv${side.ip.family} (${side.ip.toString()}) to IPv${next.family} (${next.toString()}) and its socket is on the relay's address ${side.local.toString()}: release allocation ${id} and allocate anew, so that the node is told the relay's IPv${next.family} endpoint`);
    }
    side.ip = next;
    side.socketText = socketText(next, side.local);
    side.confirmed = undefined;
    side.pending = undefined;
    side.candidates = [];
    void this.kernelSync(alloc);
  }

  has(id: string): boolean {
    return this.allocations.has(id);
  }

  /**
   * Where the stream side of a node (stream-server.ts) sends its datagrams for allocation `id`:
   * the relay port of the node's side, reached from the side's node IP. The hub allocates a side
   * for a node on a stream with a loopback node IP: nothing from outside the machine can have
   * that source (Linux drops it as martian), and the side's rules (latching by handshake, only
   * its node's IP) stay what they are for UDP.
   */
  streamSide(id: string, publicKey: string): StreamSide {
    const alloc = this.allocations.get(id);
    if (!alloc) return { kind: 'unknown' };
    const side = [alloc.a, alloc.b].find((s) => s.publicKey === publicKey);
    if (!side) return { kind: 'not-owned' };
    if (!isStreamSide(side)) return { kind: 'not-stream' };
    const to = side.local.scope() === 'unspecified' ? side.ip : side.local.family === side.ip.family ? side.local : side.ip;
    return { kind: 'ok', source: side.ip, relay: Endpoint.of(to, side.port) };
  }

  release(id: string): boolean {
    return this.releaseAs(id, 'released');
  }

  /** Counters include what the kernel fast path forwarded. */
  async stats(): Promise<AllocationStats[]> {
    const kernel = await this.kernelCounters();
    const now = Date.now();
    const plus = (a: DirectionCounters, b?: DirectionCounters) => ({ packets: a.packets + (b?.packets ?? 0), bytes: a.bytes + (b?.bytes ?? 0) });
    const side = (s: Side): SideStats => ({
      ip: s.ip.toString(),
      moving: s.pending?.endpoint.toString() ?? null,
      relayAddress: s.local.toString(),
      latched: s.confirmed?.toString() ?? null,
      candidates: s.candidates.map((c) => c.endpoint.toString()),
    });
    return [...this.allocations.values()].map((x) => ({
      id: x.id,
      portA: x.a.port,
      portB: x.b.port,
      a: side(x.a),
      b: side(x.b),
      aToB: plus(x.b.out, kernel.get(x.id)?.ab),
      bToA: plus(x.a.out, kernel.get(x.id)?.ba),
      dropped: { ...x.dropped, notLatched: x.dropped.unconfirmed + x.dropped.noDestination },
      kernel: x.kernelLegs !== undefined,
      idleMs: now - x.lastActive,
    }));
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const allocs = [...this.allocations.values()];
    this.allocations.clear();
    for (const a of allocs) {
      this.closeSide(a.a);
      this.closeSide(a.b);
      this.opts.onReleased?.(a.id, 'released');
    }
    if (this.kernels.length === 0) return;
    // One table delete instead of a removal per pair (a thousand pairs took seconds); the pairs'
    // conntrack entries still have to go, or the kernel keeps forwarding them.
    await Promise.allSettled(allocs.map((a) => a.kernelQueue));
    await Promise.allSettled(this.kernels.map((k) => k.close()));
    await Promise.allSettled(allocs.flatMap((a) => (a.kernel && a.kernelLegs ? [a.kernel.flush(a.kernelLegs.a, a.kernelLegs.b)] : [])));
  }

  private releaseAs(id: string, reason: 'idle' | 'released'): boolean {
    const alloc = this.allocations.get(id);
    if (!alloc) return false;
    this.allocations.delete(id);
    // The ports stay taken until the kernel has let go of the pair: a new allocation on them
    // (the lowest free ports come first, so often the same pair again) would otherwise have its
    // handshake forwarded by the old pair's entries, never see it, and never confirm its sides.
    this.closeSide(alloc.a, alloc.kernel !== undefined);
    this.closeSide(alloc.b, alloc.kernel !== undefined);
    this.opts.log?.debug({ allocation: id, reason, ports: [alloc.a.port, alloc.b.port], out: { a: alloc.a.out, b: alloc.b.out }, dropped: alloc.dropped, inKernel: alloc.kernelLegs !== undefined }, 'relay allocation released');
    // Without its map entries the kernel would still forward the pair's live conntrack entries
    // (NAT is decided once per flow) until they time out: flush them too.
    void this.kernelSync(alloc).finally(() => {
      if (!alloc.kernel) return;
      this.usedPorts.delete(alloc.a.port);
      this.usedPorts.delete(alloc.b.port);
    });
    this.opts.onReleased?.(id, reason);
    return true;
  }

  /**
   * The legs the kernel should forward: both sides confirmed, and no side with a live candidate
   * at another port. Such a candidate's answer would come from the other node's confirmed port,
   * which the kernel would forward to the old port; taken out of the kernel, it reaches our
   * socket and is routed by its index.
   */
  private wantedLegs(alloc: Allocation): { a: Leg; b: Leg } | undefined {
    if (!this.allocations.has(alloc.id)) return undefined;
    const { a, b } = alloc;
    if (!a.confirmed || !b.confirmed) return undefined;
    for (const s of [a, b]) if (s.pending || s.candidates.some((c) => !sameEndpoint(c.endpoint, s.confirmed))) return undefined;
    return {
      a: { ip: a.confirmed.address, port: a.confirmed.port, relayPort: a.port },
      b: { ip: b.confirmed.address, port: b.confirmed.port, relayPort: b.port },
    };
  }

  /** Brings the kernel in line with wantedLegs(); resolves when this and every earlier change for the pair is done. */
  private kernelSync(alloc: Allocation): Promise<void> {
    const k = alloc.kernel;
    if (!k) return Promise.resolve();
    const step = async () => {
      const want = this.wantedLegs(alloc);
      const have = alloc.kernelLegs;
      if (want && have && sameLegs(want, have)) return;
      if (have) {
        const counted = await k.remove(alloc.id);
        alloc.kernelLegs = undefined;
        // What the kernel forwarded now counts as forwarded by the sockets it stood in for.
        if (counted) {
          add(alloc.b.out, counted.ab);
          add(alloc.a.out, counted.ba);
          // And as heard from the sides (kernelSeen, the kernel's count, starts again from 0).
          alloc.a.transportIn += counted.ab.packets;
          alloc.b.transportIn += counted.ba.packets;
        }
        alloc.a.kernelSeen = 0;
        alloc.b.kernelSeen = 0;
        alloc.kernelEpoch++;
        await k.flush(have.a, have.b);
        this.opts.log?.debug({ allocation: alloc.id, forwarded: counted }, 'relay pair out of the kernel');
      }
      if (want) {
        await k.install(alloc.id, want.a, want.b);
        alloc.kernelLegs = want;
        this.opts.log?.debug({ allocation: alloc.id, a: legText(want.a), b: legText(want.b) }, 'relay pair in the kernel');
        await k.flush(want.a, want.b);
        // Datagrams still queued on our sockets during the handover are forwarded here as usual
        // (losing one cost a 5 s WireGuard handshake retry in the lab); their sends may leave an
        // un-NATed conntrack entry behind, so flush once more after the queue has drained.
        setTimeout(() => {
          alloc.kernelQueue = alloc.kernelQueue
            .then(async () => {
              if (alloc.kernelLegs && sameLegs(alloc.kernelLegs, want)) await k.flush(want.a, want.b);
            })
            .catch((err: unknown) => this.opts.onError?.(err));
        }, 1000).unref();
      }
    };
    alloc.kernelQueue = alloc.kernelQueue.then(step).catch((err: unknown) => this.opts.onError?.(err));
    return alloc.kernelQueue;
  }

  private onDatagram(alloc: Allocation, from: Side, to: Side, buf: Buffer, rinfo: RemoteInfo): void {
    // The text comparison is the per-datagram path. An IPv4 socket writes sources exactly as we
    // do; on an IPv6 one a source may be spelt otherwise (and an IPv4 node on a dual-stack socket
    // is ::ffff:a.b.c.d), so it is parsed (once) and compared as an address.
    if (rinfo.address !== from.socketText && (from.local.family === 4 || !from.ip.equals(sourceAddress(rinfo.address)))) {
      alloc.dropped.wrongSource++;
      return;
    }
    const d = classifyDatagram(buf, from.peerMac1Key);
    switch (d.kind) {
      case 'transport': {
        // While a move is pending, the receiver index says which session, so which port, a
        // datagram is for (see the header); otherwise the confirmed ports are all there is.
        const dest = to.pending === undefined ? to.confirmed : routeTransport(to, buf);
        if (dest && from.confirmed?.port === rinfo.port) {
          from.transportIn++;
          this.send(to, buf, dest);
          return;
        }
        const moving = from.pending;
        if (dest && moving && moving.endpoint.port === rinfo.port && buf.readUInt32LE(4) === moving.sends) {
          moving.heard++;
          this.send(to, buf, dest);
          return;
        }
        alloc.dropped.unconfirmed++;
        return;
      }
      case 'initiation':
        this.onInitiation(alloc, from, to, buf, d.senderIndex, rinfo);
        return;
      case 'response':
        this.onResponse(alloc, from, to, buf, d.receiverIndex, rinfo);
        return;
      case 'cookie': {
        const cand = this.candidateFor(to, d.receiverIndex);
        if (!cand) {
          alloc.dropped.unknownIndex++;
          return;
        }
        this.send(to, buf, cand.endpoint);
        return;
      }
      case 'bad-mac1':
        alloc.dropped.badMac1++;
        return;
      case 'malformed':
        alloc.dropped.malformed++;
    }
  }

  /** `index`: the initiation's sender index (its mac1 is already checked). */
  private onInitiation(alloc: Allocation, from: Side, to: Side, buf: Buffer, index: number, rinfo: RemoteInfo): void {
    const now = performance.now();
    prune(from, now);
    const known = from.candidates.find((c) => c.index === index);
    if (known && known.endpoint.port !== rinfo.port) {
      // WireGuard draws a fresh index for every initiation, retries included, so the first port
      // an index came from is the genuine one; a copy from elsewhere must not redirect its answer.
      alloc.dropped.replayed++;
      return;
    }
    // The source matched the side's IP, so the side's IP (unmapped) is the address of the endpoint.
    const source = Endpoint.of(from.ip, rinfo.port);
    if (!known) {
      from.candidates.push({ endpoint: source, index, seenAt: now });
      if (from.candidates.length > MAX_CANDIDATES) from.candidates.shift();
    }
    const forward = () => {
      prune(to, performance.now());
      const dest = to.confirmed ?? to.candidates[to.candidates.length - 1]?.endpoint;
      if (!dest) {
        alloc.dropped.noDestination++;
        return;
      }
      this.send(to, buf, dest);
      // A side in the middle of a move may be at either port; its WireGuard drops the copy it does not need.
      if (to.pending && !sameEndpoint(to.pending.endpoint, dest)) this.send(to, buf, to.pending.endpoint);
    };
    if (alloc.kernel && !sameEndpoint(from.confirmed, source)) {
      // The answer must reach our socket, not be forwarded by the kernel to the old port: forward
      // once the pair is out of the kernel (behind any install still under way).
      void this.kernelSync(alloc).then(() => {
        if (this.allocations.get(alloc.id) === alloc) forward();
      });
      return;
    }
    forward();
  }

  /** `receiverIndex`: the initiation this response answers (its mac1 is already checked). */
  private onResponse(alloc: Allocation, from: Side, to: Side, buf: Buffer, receiverIndex: number, rinfo: RemoteInfo): void {
    const cand = this.candidateFor(to, receiverIndex);
    if (!cand) {
      alloc.dropped.unknownIndex++;
      return;
    }
    // One answer per initiation: a second response naming the same index proves nothing new.
    to.candidates = to.candidates.filter((c) => c !== cand);
    this.send(to, buf, cand.endpoint);
    const now = performance.now();
    // Decided once for both sides: moving the first must not make the pair look idle for the second.
    const busy = this.carrying(alloc.a, now) && this.carrying(alloc.b, now);
    const responderIndex = buf.readUInt32LE(4);
    // The initiator's transport names the responder's index, and the other way round.
    this.handshook(alloc, to, cand.endpoint, busy, { sends: responderIndex, receives: cand.index }, now);
    this.handshook(alloc, from, Endpoint.of(from.ip, rinfo.port), busy, { sends: cand.index, receives: responderIndex }, now);
    void this.kernelSync(alloc);
  }

  /** A side completed a handshake from `ep`: confirmed there, or (a busy pair, another port) a pending move. */
  private handshook(alloc: Allocation, side: Side, ep: Endpoint, busy: boolean, session: { sends: number; receives: number }, now: number): void {
    if (sameEndpoint(side.confirmed, ep)) return;
    if (!side.confirmed || !busy) {
      side.pending = undefined;
      this.confirm(alloc, side, ep);
      return;
    }
    side.pending = { endpoint: ep, ...session, heard: 0, heardSeen: 0, heardAt: now };
  }

  /** Whether a side's confirmed port carried transport within activeMs (to the sweeper's resolution, and what came since its last look). */
  private carrying(side: Side, now: number): boolean {
    return side.transportIn + side.kernelSeen !== side.heardSeen || now - side.heardAt <= this.activeMs;
  }

  private candidateFor(side: Side, index: number): Candidate | undefined {
    prune(side, performance.now());
    return side.candidates.find((c) => c.index === index);
  }

  private confirm(alloc: Allocation, side: Side, ep: Endpoint): void {
    if (sameEndpoint(side.confirmed, ep)) return;
    side.confirmed = ep;
    // A new port carries nothing yet: it is not "carrying" until it does.
    side.heardAt = -Infinity;
    side.heardSeen = side.transportIn + side.kernelSeen;
    this.opts.log?.debug({ allocation: alloc.id, port: side.port, endpoint: ep.toString() }, 'relay side confirmed');
    this.opts.onLatched?.(alloc.id, side.publicKey, ep.toString());
  }

  /**
   * The sweeper's look at a pending move: made once the new port carried the new session and the
   * old port has been silent for activeMs; dropped once the new port has been silent that long.
   */
  private settle(alloc: Allocation, side: Side, now: number): boolean {
    const p = side.pending;
    if (!p) return false;
    if (p.heard !== p.heardSeen) {
      p.heardSeen = p.heard;
      p.heardAt = now;
    }
    if (p.heard > 0 && !this.carrying(side, now)) {
      side.pending = undefined;
      this.confirm(alloc, side, p.endpoint);
      return true;
    }
    if (now - p.heardAt > this.activeMs) {
      side.pending = undefined;
      return true;
    }
    return false;
  }

  /** Every destination of a side has the side's IP: only the port comes from `dest`. */
  private send(to: Side, buf: Buffer, dest: Endpoint): void {
    to.socket.send(buf, dest.port, to.socketText);
    to.out.packets++;
    to.out.bytes += buf.length;
  }

  /** The lowest port of the range nobody holds or has reserved (and not in `skip`), now reserved; undefined when the range is full. */
  private reservePort(skip?: ReadonlySet<number>): number | undefined {
    for (let port = this.opts.portMin; port <= this.opts.portMax; port++) {
      if (this.usedPorts.has(port) || skip?.has(port)) continue;
      this.usedPorts.add(port);
      return port;
    }
    return undefined;
  }

  /** Binds the reserved `port` (another one if something else on this machine holds it); gives its reservation back when it fails. */
  private async openSide(reserved: number, publicKey: string, ip: IpAddress, local: IpAddress, otherPublicKey: string): Promise<Side> {
    const tried = new Set<number>();
    for (let port: number | undefined = reserved; port !== undefined; port = this.reservePort(tried)) {
      // ipv6Only stays false: a socket on "::" is the dual-stack one IPv4 nodes may be served on;
      // on a specific IPv6 address it changes nothing.
      const socket = createSocket({ type: local.family === 6 ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
      const failed = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
        socket.once('error', (err) => resolve(err));
        socket.bind(port, local.toString(), () => resolve(undefined));
      });
      if (failed) {
        socket.close();
        this.usedPorts.delete(port);
        // Only a taken port is worth trying the next one for; an address this machine does not
        // have (an IPv6 hub endpoint behind a port forward, say) fails the same on every port.
        if (failed.code === 'EADDRINUSE' || failed.code === 'EACCES') {
          tried.add(port);
          continue;
        }
        throw new RelayError(`cannot bind the relay address ${local.toString()} (${failed.code ?? failed.message}): it must be an address of this machine; give the relay the address of its family that nodes reach it at, and that is on a local interface`);
      }
      socket.on('error', () => undefined);
      return {
        publicKey,
        ip,
        socketText: socketText(ip, local),
        local,
        socket,
        port,
        peerMac1Key: mac1Key(Buffer.from(otherPublicKey, 'base64')),
        candidates: [],
        out: { packets: 0, bytes: 0 },
        transportIn: 0,
        kernelSeen: 0,
        heardSeen: 0,
        heardAt: -Infinity,
      };
    }
    throw new RelayError(`no free relay port in ${this.opts.portMin}-${this.opts.portMax}`);
  }

  /** The sweeper's look at what a side's confirmed port carried: `kernel` is what the kernel forwarded from it since it was installed. */
  private hear(side: Side, kernel: number, now: number): void {
    side.kernelSeen = kernel;
    const total = side.transportIn + kernel;
    if (total === side.heardSeen) return;
    side.heardSeen = total;
    side.heardAt = now;
  }

  /** `keepPort`: the port stays reserved (the caller frees it once the kernel is done with it). */
  private closeSide(s: Side, keepPort = false): void {
    if (!keepPort) this.usedPorts.delete(s.port);
    s.socket.close();
  }

  private sweep(): void {
    void (async () => {
      // Traffic the kernel forwards never reaches us: its counters count as activity too.
      const epochs = new Map([...this.allocations.values()].map((a) => [a, a.kernelEpoch]));
      const kernel = await this.kernelCounters();
      const now = Date.now();
      const tick = performance.now();
      for (const a of [...this.allocations.values()]) {
        const k = kernel.get(a.id);
        const total = a.a.out.packets + a.b.out.packets + (k ? k.ab.packets + k.ba.packets : 0);
        if (total !== a.packetsSeen) {
          a.packetsSeen = total;
          a.lastActive = now;
        }
        if (now - a.lastActive > this.idleMs) {
          this.releaseAs(a.id, 'idle');
          continue;
        }
        // A candidate nobody answered (a spoofed or replayed initiation) kept the pair out of the
        // kernel; once it expires the pair goes back in.
        const had = a.a.candidates.length + a.b.candidates.length;
        prune(a.a, tick);
        prune(a.b, tick);
        let changed = a.a.candidates.length + a.b.candidates.length !== had;
        // A reading from before the pair left the kernel would count its packets twice (they were
        // added to transportIn when it left) and make an idle side look busy: skip this round.
        if (epochs.get(a) === a.kernelEpoch) {
          this.hear(a.a, k?.ab.packets ?? 0, tick);
          this.hear(a.b, k?.ba.packets ?? 0, tick);
        }
        if (this.settle(a, a.a, tick)) changed = true;
        if (this.settle(a, a.b, tick)) changed = true;
        if (changed) void this.kernelSync(a);
      }
    })().catch((err: unknown) => this.opts.onError?.(err));
  }
}

/** Where transport toward a side with a pending move goes: its new port for the new session's index, else the confirmed one. */
function routeTransport(to: Side, buf: Buffer): Endpoint | undefined {
  return to.pending && buf.readUInt32LE(4) === to.pending.receives ? to.pending.endpoint : to.confirmed;
}

function isStreamSide(s: Side): boolean {
  return s.ip.scope() === 'loopback';
}

function checkKey(publicKey: string): void {
  if (Buffer.from(publicKey, 'base64').length !== 32) throw new RelayError('public keys must be 32 bytes of base64');
}

function prune(side: Side, now: number): void {
  while (side.candidates.length > 0 && now - side.candidates[0].seenAt > CANDIDATE_MS) side.candidates.shift();
}

/** How a socket on `local` writes `ip`: an IPv4 node on a dual-stack socket is ::ffff:a.b.c.d (a plain dotted quad is EINVAL there). */
function socketText(ip: IpAddress, local: IpAddress): string {
  return local.family === 6 && ip.family === 4 ? `::ffff:${ip.toString()}` : ip.toString();
}

/** The relay's addresses, checked: one or two, at most one per family (an IPv4-mapped address is the IPv4 one), IPv4 first. */
function relayAddresses(given: readonly (string | IpAddress)[]): IpAddress[] {
  if (!Array.isArray(given) || given.length === 0) throw new RelayError('addresses: give the relay one address, or one of each family');
  const out = given.map((x, i) => (typeof x === 'string' ? parseIp(x, `addresses[${i}]`) : x).unmapped());
  for (const f of [4, 6]) {
    const of = out.filter((a) => a.family === f);
    if (of.length > 1) throw new RelayError(`addresses: ${of.map(String).join(' and ')} are both IPv${f}; a relay has at most one address per family`);
  }
  return out.sort((x, y) => x.family - y.family);
}

function parseIp(text: string, what: string): IpAddress {
  try {
    return IpAddress.parse(text);
  } catch (err) {
    throw new RelayError(`${what}: ${(err as Error).message}`);
  }
}

function sameLegs(x: { a: Leg; b: Leg }, y: { a: Leg; b: Leg }): boolean {
  const eq = (p: Leg, q: Leg) => p.ip.equals(q.ip) && p.port === q.port && p.relayPort === q.relayPort;
  return eq(x.a, y.a) && eq(x.b, y.b);
}

function legText(l: Leg): string {
  return `${Endpoint.of(l.ip, l.port).toString()} via ${l.relayPort}`;
}

function add(to: DirectionCounters, x: DirectionCounters): void {
  to.packets += x.packets;
  to.bytes += x.bytes;
}
