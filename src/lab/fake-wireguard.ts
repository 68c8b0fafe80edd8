import { randomBytes } from 'node:crypto';
import { blake2s } from '../core/wireguard/blake2s.js';
import { mac1Key } from '../core/wireguard/packet.js';

/** WireGuard-shaped datagrams for relay tests and load: right sizes and a valid mac1, random contents. */

export function fakeInitiation(responderPublicKey: string): Buffer {
  const msg = Buffer.concat([Buffer.from([1, 0, 0, 0]), randomBytes(112), Buffer.alloc(32)]);
  blake2s(msg.subarray(0, 116), 16, mac1Key(Buffer.from(responderPublicKey, 'base64'))).copy(msg, 116);
  return msg;
}

export function fakeTransport(size: number): Buffer {
  return Buffer.concat([Buffer.from([4, 0, 0, 0]), randomBytes(size - 4)]);
}
