import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { mac1Key, messageType, MESSAGE, verifyMac1 } from '../core/wireguard/packet.js';
import type { KernelPath } from './kernel-path.js';

/**
 * A relay for WireGuard datagrams it cannot decrypt. Each allocation serves one pair of nodes and
 * owns two UDP ports, one per side: A sends to portA and B receives from portB, and back.
 *
 * Not an open relay: a side only accepts datagrams from its node's public IP (as the hub sees it),
 * learns the node's port only from a handshake message whose mac1 is valid for the other side's
 * public key (which a spoofer who is not on the path cannot make for an arbitrary port… it can
 * replay one, but only from the node's own IP), and forwards only to the other side's learned
 * address. Nothing is ever sent anywhere else.
 */

export interface RelaySideSpec {
  publicKey: string;
  /** The node's public IP; the port is learned from its first valid handshake message. */
  ip: string;
}

export interface DirectionCounters {
  packets: number;
  bytes: number;
}

export interface AllocationStats {
  id: string;
  portA: number;
  portB: number;
  a: { ip: string; latched: string | null };
  b: { ip: string; latched: string | null };
  aToB: DirectionCounters;
  bToA: DirectionCounters;
  dropped: { malformed: number; wrongSource: number; notLatched: number };
  idleMs: number;
}

interface Side {
  spec: RelaySideSpec;
  socket: Socket;
  port: number;
  /** mac1 key of the *other* side: handshake messages arriving here are addressed to it. */
  peerMac1Key: Buffer;
  latched?: { address: string; port: number };
  out: DirectionCounters;
}

interface Allocation {
  id: string;
  a: Side;
  b: Side;
  /** Set by the sweeper when the forwarded-packet count moved, so the datagram path never reads the clock. */
  lastActive: number;
  packetsSeen: number;
  dropped: AllocationStats['dropped'];
}

export interface RelayOptions {
  /** Address the relay's ports bind to. */
  address: string;
  portMin: number;
  portMax: number;
  /** An allocation with no forwarded traffic for this long is released. */
  idleMs?: number;
  /** Kernel forwarding for latched pairs (see kernel-path.ts); userspace only when absent. */
  kernel?: KernelPath;
  onError?: (err: unknown) => void;
  /** A side was confirmed at this address (the hub learns each node's mapping toward the relay). */
  onLatched?: (id: string, publicKey: string, endpoint: string) => void;
  onReleased?: (id: string, reason: 'idle' | 'released') => void;
}

export class RelayError extends Error {
  override name = 'RelayError';
}

export class Relay {
  private allocations = new Map<string, Allocation>();
  private usedPorts = new Set<number>();
  private sweeper: NodeJS.Timeout;
  readonly idleMs: number;

  constructor(private readonly opts: RelayOptions) {
    this.idleMs = opts.idleMs ?? 120_000;
    this.sweeper = setInterval(() => this.expire(), Math.min(5000, this.idleMs / 2));
    this.sweeper.unref();
  }

  get address(): string {
    return this.opts.address;
  }

  async allocate(id: string, a: RelaySideSpec, b: RelaySideSpec): Promise<{ portA: number; portB: number }> {
    if (this.allocations.has(id)) throw new RelayError(`allocation ${id} exists`);
    const sideA = await this.openSide(a, b.publicKey);
    let sideB: Side;
    try {
      sideB = await this.openSide(b, a.publicKey);
    } catch (err) {
      this.closeSide(sideA);
      throw err;
    }
    const alloc: Allocation = { id, a: sideA, b: sideB, lastActive: Date.now(), packetsSeen: 0, dropped: { malformed: 0, wrongSource: 0, notLatched: 0 } };
    sideA.socket.on('message', (buf, rinfo) => this.onDatagram(alloc, sideA, sideB, buf, rinfo));
    sideB.socket.on('message', (buf, rinfo) => this.onDatagram(alloc, sideB, sideA, buf, rinfo));
    this.allocations.set(id, alloc);
    return { portA: sideA.port, portB: sideB.port };
  }

  /** A node roamed: accept its new public IP (its port is learned again from a handshake). */
  updateIp(id: string, publicKey: string, ip: string): void {
    const alloc = this.allocations.get(id);
    const side = alloc && [alloc.a, alloc.b].find((s) => s.spec.publicKey === publicKey);
    if (!side) throw new RelayError(`allocation ${id} has no side for that key`);
    side.spec = { ...side.spec, ip };
    side.latched = undefined;
    this.kernelSync(alloc);
  }

  has(id: string): boolean {
    return this.allocations.has(id);
  }

  release(id: string, reason: 'idle' | 'released' = 'released'): boolean {
    const alloc = this.allocations.get(id);
    if (!alloc) return false;
    this.opts.onReleased?.(id, reason);
    this.allocations.delete(id);
    if (this.opts.kernel) void this.opts.kernel.remove(id).catch((err: unknown) => this.opts.onError?.(err));
    this.closeSide(alloc.a);
    this.closeSide(alloc.b);
    return true;
  }

  /** Counters include what the kernel fast path forwarded. */
  async stats(): Promise<AllocationStats[]> {
    const kernel = (await this.opts.kernel?.counters()) ?? new Map();
    const now = Date.now();
    const plus = (a: DirectionCounters, b?: DirectionCounters) => ({ packets: a.packets + (b?.packets ?? 0), bytes: a.bytes + (b?.bytes ?? 0) });
    return [...this.allocations.values()].map((x) => ({
      id: x.id,
      portA: x.a.port,
      portB: x.b.port,
      a: { ip: x.a.spec.ip, latched: x.a.latched ? `${x.a.latched.address}:${x.a.latched.port}` : null },
      b: { ip: x.b.spec.ip, latched: x.b.latched ? `${x.b.latched.address}:${x.b.latched.port}` : null },
      aToB: plus(x.b.out, kernel.get(x.id)?.ab),
      bToA: plus(x.a.out, kernel.get(x.id)?.ba),
      dropped: { ...x.dropped },
      idleMs: now - x.lastActive,
    }));
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    for (const id of [...this.allocations.keys()]) this.release(id);
    await this.opts.kernel?.close();
  }

  /** Hands a pair to the kernel once both ends are known; takes it back while one is not. */
  private kernelSync(alloc: Allocation): void {
    const k = this.opts.kernel;
    if (!k) return;
    const { a, b } = alloc;
    if (!a.latched || !b.latched) {
      void k.remove(alloc.id).catch((err: unknown) => this.opts.onError?.(err));
      return;
    }
    const legA = { ip: a.latched.address, port: a.latched.port, relayPort: a.port };
    const legB = { ip: b.latched.address, port: b.latched.port, relayPort: b.port };
    // Datagrams still queued on our sockets during the handover are forwarded here as usual (losing
    // one cost a 5 s WireGuard handshake retry in the lab); their sends may leave an un-NATed
    // conntrack entry behind, so flush once more after the queue has drained.
    void k
      .install(alloc.id, legA, legB)
      .then(() => k.flush(legA, legB))
      .then(() => new Promise((r) => setTimeout(r, 1000)))
      .then(() => (this.allocations.has(alloc.id) ? k.flush(legA, legB) : undefined))
      .catch((err: unknown) => this.opts.onError?.(err));
  }

  private onDatagram(alloc: Allocation, from: Side, to: Side, buf: Buffer, rinfo: RemoteInfo): void {
    if (rinfo.address !== from.spec.ip) {
      alloc.dropped.wrongSource++;
      return;
    }
    const type = messageType(buf);
    if (type === 0) {
      alloc.dropped.malformed++;
      return;
    }
    const latched = from.latched;
    if (!latched || latched.port !== rinfo.port) {
      // Only a handshake made for the other side's key may (re)bind this side's port: roaming
      // inside one NAT changes the port, and WireGuard re-handshakes after it.
      if ((type === MESSAGE.initiation || type === MESSAGE.response) && verifyMac1(buf, from.peerMac1Key)) {
        from.latched = { address: rinfo.address, port: rinfo.port };
        this.opts.onLatched?.(alloc.id, from.spec.publicKey, `${rinfo.address}:${rinfo.port}`);
        this.kernelSync(alloc);
      } else {
        alloc.dropped.notLatched++;
        return;
      }
    }
    const dest = to.latched;
    if (!dest) {
      // The other side has not spoken yet; WireGuard retransmits its handshake, so dropping is fine.
      alloc.dropped.notLatched++;
      return;
    }
    to.socket.send(buf, dest.port, dest.address);
    to.out.packets++;
    to.out.bytes += buf.length;
  }

  private async openSide(spec: RelaySideSpec, otherPublicKey: string): Promise<Side> {
    const key = Buffer.from(otherPublicKey, 'base64');
    if (key.length !== 32) throw new RelayError('public keys must be 32 bytes of base64');
    for (let port = this.opts.portMin; port <= this.opts.portMax; port++) {
      if (this.usedPorts.has(port)) continue;
      const socket = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
      const ok = await new Promise<boolean>((resolve) => {
        socket.once('error', () => resolve(false));
        socket.bind(port, this.opts.address, () => resolve(true));
      });
      if (!ok) {
        socket.close();
        continue;
      }
      this.usedPorts.add(port);
      socket.on('error', () => undefined);
      return { spec, socket, port, peerMac1Key: mac1Key(key), out: { packets: 0, bytes: 0 } };
    }
    throw new RelayError(`no free relay port in ${this.opts.portMin}-${this.opts.portMax}`);
  }

  private closeSide(s: Side): void {
    this.usedPorts.delete(s.port);
    s.socket.close();
  }

  private expire(): void {
    void (async () => {
      // Traffic the kernel forwards never reaches us: its counters count as activity too.
      const kernel = (await this.opts.kernel?.counters()) ?? new Map();
      const now = Date.now();
      for (const a of [...this.allocations.values()]) {
        const k = kernel.get(a.id);
        const total = a.a.out.packets + a.b.out.packets + (k ? k.ab.packets + k.ba.packets : 0);
        if (total !== a.packetsSeen) {
          a.packetsSeen = total;
          a.lastActive = now;
        }
        if (now - a.lastActive > this.idleMs) this.release(a.id, 'idle');
      }
    })().catch((err: unknown) => this.opts.onError?.(err));
  }
}
