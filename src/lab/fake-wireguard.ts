import { randomBytes } from 'node:crypto';
import { blake2s } from '../core/wireguard/blake2s.js';
import { mac1Key } from '../core/wireguard/packet.js';

/**
 * WireGuard-shaped datagrams for relay tests and load: right sizes, the indices a relay routes by,
 * a valid mac1, random contents. None of them would be accepted by a real WireGuard.
 */

function withMac1(msg: Buffer, macOffset: number, responderPublicKey: string): Buffer {
  blake2s(msg.subarray(0, macOffset), 16, mac1Key(Buffer.from(responderPublicKey, 'base64'))).copy(msg, macOffset);
  return msg;
}

/** A random 32-bit index, as WireGuard draws one per handshake. */
export function randomIndex(): number {
  return randomBytes(4).readUInt32LE(0);
}

/** Initiation (148 bytes) to `responderPublicKey`, sender index at bytes 4..8. */
export function fakeInitiation(responderPublicKey: string, senderIndex = randomIndex()): Buffer {
  const msg = Buffer.concat([Buffer.from([1, 0, 0, 0]), randomBytes(112), Buffer.alloc(32)]);
  msg.writeUInt32LE(senderIndex >>> 0, 4);
  return withMac1(msg, 116, responderPublicKey);
}

/** The sender index of an initiation (what its response and cookie reply name). */
export function senderIndex(initiation: Buffer): number {
  return initiation.readUInt32LE(4);
}

/** Response (92 bytes) to the initiator `initiatorPublicKey`, answering the initiation whose sender index is `receiverIndex`. */
export function fakeResponse(initiatorPublicKey: string, receiverIndex: number, ownIndex = randomIndex()): Buffer {
  const msg = Buffer.concat([Buffer.from([2, 0, 0, 0]), randomBytes(56), Buffer.alloc(32)]);
  msg.writeUInt32LE(ownIndex >>> 0, 4);
  msg.writeUInt32LE(receiverIndex >>> 0, 8);
  return withMac1(msg, 60, initiatorPublicKey);
}

/** Cookie reply (64 bytes) answering the handshake message whose sender index is `receiverIndex` (cookie replies carry no mac). */
export function fakeCookieReply(receiverIndex: number): Buffer {
  const msg = Buffer.concat([Buffer.from([3, 0, 0, 0]), randomBytes(60)]);
  msg.writeUInt32LE(receiverIndex >>> 0, 4);
  return msg;
}

export function fakeTransport(size: number): Buffer {
  return Buffer.concat([Buffer.from([4, 0, 0, 0]), randomBytes(size - 4)]);
}
