import { messageType, MESSAGE, verifyMac1 } from '../core/wireguard/packet.js';

/**
 * What the relay makes of one datagram from a node, before any allocation state is read: the
 * message type by WireGuard's fixed shapes, mac1 for handshake messages, and the index the relay
 * routes by. Pure, so the fuzzer (bench/fuzz-targets.ts) drives exactly what relay.ts runs.
 */
export type Datagram =
  | { readonly kind: 'transport' }
  /** Not shaped like a WireGuard message. */
  | { readonly kind: 'malformed' }
  /** An initiation or response whose mac1 is not made for the responder's key. */
  | { readonly kind: 'bad-mac1' }
  | { readonly kind: 'initiation'; readonly senderIndex: number }
  | { readonly kind: 'response'; readonly receiverIndex: number }
  | { readonly kind: 'cookie'; readonly receiverIndex: number };

// Transport is the per-datagram path at a gigabit: the common answers allocate nothing.
const TRANSPORT: Datagram = Object.freeze({ kind: 'transport' });
const MALFORMED: Datagram = Object.freeze({ kind: 'malformed' });
const BAD_MAC1: Datagram = Object.freeze({ kind: 'bad-mac1' });

/** `responderMac1Key`: the mac1 key of the node the datagram is addressed to (the other side). */
export function classifyDatagram(buf: Buffer, responderMac1Key: Buffer): Datagram {
  switch (messageType(buf)) {
    case MESSAGE.transport:
      return TRANSPORT;
    case MESSAGE.initiation:
      return verifyMac1(buf, responderMac1Key) ? { kind: 'initiation', senderIndex: buf.readUInt32LE(4) } : BAD_MAC1;
    case MESSAGE.response:
      return verifyMac1(buf, responderMac1Key) ? { kind: 'response', receiverIndex: buf.readUInt32LE(8) } : BAD_MAC1;
    case MESSAGE.cookie:
      // A cookie reply carries no mac1; it is routed like a response and confirms nothing.
      return { kind: 'cookie', receiverIndex: buf.readUInt32LE(4) };
    default:
      return MALFORMED;
  }
}
