import type { IpAddress } from '../net/address.js';
import type { NodeView } from './kind.js';

/**
 * The `tcp-relay` candidate (issue 12): a pair with a side whose network blocks UDP. That node's
 * agent found no UDP handshake with the hub and rides the hub's TLS stream (agent/hub-stream.ts),
 * so the hub's device sees it on loopback (the stream side's socket toward the hub's WireGuard,
 * relay/stream-ports.ts) and `NodeView.stream` is set. Such a node has no public endpoint the hub
 * can see, and its UDP is blocked, so no direct kind is tried (the node's LAN and IPv6 addresses
 * are of a network that passes no UDP): the pair goes to the relay, and the node's side of the
 * allocation rides the stream too.
 *
 * The relay's per-pair rules hold unchanged (design note 2 of docs/stream.md): the
 * side is allocated with the node IP the hub sees it at, 127.0.0.1 (or ::1), which the relay
 * takes as a stream side (`Relay#streamSide` refuses any other), and nothing from outside the
 * machine can come from a loopback source. The agent opens `{kind:'allocation', id}` on its
 * shim and points the peer at the local port it gets: the hub's shim for the built-in relay, or,
 * for a relay on its own machine, a shim to that relay's stream side, each open carrying the
 * hub's ticket for this side (core/stream/ticket.ts; relay-pool.ts skips relays without a stream
 * side). Stream <-> stream pairs are the same with
 * both sides loopback. When the node's UDP works again, the hub sees it at a public endpoint,
 * this kind stops applying, and the pair goes direct.
 *
 * Not a CandidateKind: it is not punched, and nothing proves it but the relay's traffic; it says
 * which pairs skip the direct kinds, which side of their allocation rides the stream, and why.
 */

export const TCP_RELAY_ID = 'tcp-relay' as const;

export const tcpRelay = {
  id: TCP_RELAY_ID,
  label: 'the relay over the TLS stream',
  name: 'TCP relay',

  /** Whether `n` reaches the hub over its stream. */
  onStream(n: NodeView): boolean {
    return n.stream != null;
  },

  /** The pair runs over the relay with a side on the stream. */
  applies(x: NodeView, y: NodeView): boolean {
    return this.onStream(x) || this.onStream(y);
  },

  /** Why the direct kinds are not tried for x and y, or null when neither is on the stream. */
  blocksDirect(x: NodeView, y: NodeView): string | null {
    const on = [x, y].filter((n) => this.onStream(n)).map((n) => n.name);
    if (on.length === 0) return null;
    return `${on.join(' and ')} ${on.length === 1 ? 'reaches' : 'reach'} the hub only over TCP/TLS (no UDP handshake): relayed over the stream until UDP passes`;
  },

  /** The node IP of `n`'s side of a relay allocation: loopback on the stream, else the public IP the hub sees. */
  relayIp(n: NodeView): IpAddress | undefined {
    return n.stream?.address ?? n.seen?.address;
  },
};
