import { blake2s } from './blake2s.js';

/**
 * WireGuard message headers, enough for a relay that cannot decrypt: the type, the fixed sizes,
 * and mac1, which proves a handshake message was made for a given responder public key.
 */

export const MESSAGE = { initiation: 1, response: 2, cookie: 3, transport: 4 } as const;
const SIZES: Record<number, number> = { 1: 148, 2: 92, 3: 64 };
/** Offset of mac1 in initiation and response messages (mac1 and mac2 are the last 32 bytes). */
const MAC1_OFFSET: Record<number, number> = { 1: 116, 2: 60 };

/** The message type if `buf` is shaped like a WireGuard message, else 0. */
export function messageType(buf: Buffer): number {
  if (buf.length < 4) return 0;
  const type = buf[0];
  if (buf[1] !== 0 || buf[2] !== 0 || buf[3] !== 0) return 0;
  // Transport payloads are padded to 16 bytes but never past the MTU, so a full-size packet's length
  // is not a multiple of 16 (measured: iperf3 through the relay stalled when we required it).
  if (type === MESSAGE.transport) return buf.length >= 32 ? type : 0;
  return SIZES[type] === buf.length ? type : 0;
}

/** HASH(LABEL_MAC1 || responder public key): the mac1 key, computed once per peer. */
export function mac1Key(responderPublicKey: Buffer): Buffer {
  return blake2s(Buffer.concat([Buffer.from('mac1----'), responderPublicKey]), 32);
}

/** True if a handshake initiation/response carries a valid mac1 for this responder key. */
export function verifyMac1(buf: Buffer, key: Buffer): boolean {
  const off = MAC1_OFFSET[buf[0]];
  if (off === undefined || buf.length !== SIZES[buf[0]]) return false;
  return blake2s(buf.subarray(0, off), 16, key).equals(buf.subarray(off, off + 16));
}
