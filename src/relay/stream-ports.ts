import { createSocket, type Socket } from 'node:dgram';
import type { Cancel, Clock } from '../core/clock.js';
import type { IpAddress } from '../core/net/address.js';
import type { StreamTarget } from '../core/stream/messages.js';

/**
 * The UDP sockets through which nodes on a stream reach the relay's ports (or the hub's
 * WireGuard), one per node and target, kept for a while after the node's stream ends.
 *
 * Why kept: the relay confirms a side at the ip:port its handshake came from (relay.ts), and
 * the hub's WireGuard knows a peer at its endpoint. If a reconnected stream got a new socket,
 * the node's side would come from a new port, and its datagrams would be dropped as unconfirmed
 * until WireGuard re-handshakes on its own (15 s or more after its data goes unanswered). With
 * the same socket, a reconnect within `graceMs` changes nothing the relay or the hub can see.
 */

const keyOf = (publicKey: string, to: StreamTarget) => `${publicKey} ${to.kind === 'hub' ? 'hub' : to.id}`;

interface Held {
  readonly socket: Socket;
  readonly source: string;
  /** The session using it: a session that lost it to a newer one must not park it. */
  owner: object;
  parked?: Cancel;
}

export class StreamPorts {
  private readonly held = new Map<string, Held>();

  constructor(
    private readonly clock: Clock,
    private readonly graceMs: number,
  ) {}

  /** The node's socket for `to`, bound on `source` (a fresh one, or the one it had). */
  take(publicKey: string, to: StreamTarget, source: IpAddress, owner: object): Socket {
    const key = keyOf(publicKey, to);
    const h = this.held.get(key);
    if (h && h.source === source.toString()) {
      h.parked?.();
      h.parked = undefined;
      h.owner = owner;
      h.socket.removeAllListeners('message');
      return h.socket;
    }
    if (h) this.drop(key, h);
    const socket = createSocket({ type: source.family === 6 ? 'udp6' : 'udp4', recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
    socket.on('error', () => undefined);
    // Sends before the bind completes are queued by dgram, so nothing leaves from another source.
    socket.bind(0, source.toString());
    this.held.set(key, { socket, source: source.toString(), owner });
    return socket;
  }

  /** The node's stream ended: keep the socket for `graceMs` in case it comes back. */
  park(publicKey: string, to: StreamTarget, owner: object): void {
    const key = keyOf(publicKey, to);
    const h = this.held.get(key);
    if (!h || h.parked || h.owner !== owner) return;
    h.socket.removeAllListeners('message');
    h.parked = this.clock.after(this.graceMs, () => {
      if (this.held.get(key) === h) this.drop(key, h);
    });
  }

  /** The node closed the channel, or its allocation is gone: the socket goes now. */
  release(publicKey: string, to: StreamTarget, owner: object): void {
    const key = keyOf(publicKey, to);
    const h = this.held.get(key);
    if (h && h.owner === owner) this.drop(key, h);
  }

  /** Every node's socket of allocation `id`. */
  releaseAllocation(id: string): void {
    for (const [key, h] of [...this.held]) if (key.endsWith(` ${id}`)) this.drop(key, h);
  }

  get size(): number {
    return this.held.size;
  }

  close(): void {
    for (const [key, h] of [...this.held]) this.drop(key, h);
  }

  private drop(key: string, h: Held): void {
    h.parked?.();
    this.held.delete(key);
    h.socket.close();
  }
}
