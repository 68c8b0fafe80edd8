import { IpAddress } from '../net/address.js';
import type { Decoded } from './pcp.js';

/**
 * NAT-PMP (RFC 6886) as bytes: the external-address and UDP-map requests and their replies.
 *
 * Written here rather than taken from @achingbrain/nat-port-mapper (4.0.5), whose NAT-PMP client
 * does not fit an agent that runs for months as root: it reads reply fields without checking the
 * reply's length (a short datagram from the LAN throws inside its socket handler, which takes the
 * process down), never exposes the epoch (so a router reboot cannot be noticed), binds the fixed
 * client port 5350, sends its millisecond TTL as the lifetime in seconds, and never retransmits.
 * The protocol is 12-16 bytes of fixed layout; its UPnP client is what we use the library for.
 */

export const NATPMP_VERSION = 0;
export const NATPMP_SERVER_PORT = 5351;
const OP_EXTERNAL = 0;
const OP_MAP_UDP = 1;
const RESPONSE = 128;
/** Replies are 12 (external address) or 16 (map) bytes; anything over this is not NAT-PMP. */
const MAX_REPLY = 1100;

export const NATPMP_RESULT_NAMES: Readonly<Record<number, string>> = {
  0: 'Success',
  1: 'Unsupported Version',
  2: 'Not Authorized/Refused',
  3: 'Network Failure',
  4: 'Out of resources',
  5: 'Unsupported opcode',
};

export function natpmpResultName(code: number): string {
  return NATPMP_RESULT_NAMES[code] ?? `unknown result ${code}`;
}

/** RFC 6886 section 3.2. */
export function encodeNatpmpExternal(): Uint8Array {
  return Uint8Array.of(NATPMP_VERSION, OP_EXTERNAL);
}

/** RFC 6886 section 3.3: a UDP mapping; lifetime 0 (with suggested port 0) deletes it. */
export function encodeNatpmpMapUdp(r: { internalPort: number; suggestedPort: number; lifetimeS: number }): Uint8Array {
  if (!Number.isInteger(r.internalPort) || r.internalPort < 1 || r.internalPort > 65535) throw new RangeError(`NAT-PMP internalPort ${r.internalPort} must be 1-65535`);
  if (!Number.isInteger(r.suggestedPort) || r.suggestedPort < 0 || r.suggestedPort > 65535) throw new RangeError(`NAT-PMP suggestedPort ${r.suggestedPort} must be 0-65535`);
  if (!Number.isInteger(r.lifetimeS) || r.lifetimeS < 0 || r.lifetimeS > 0xffffffff) throw new RangeError(`NAT-PMP lifetime ${r.lifetimeS} must be whole seconds, 0 to 2^32-1`);
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  b[0] = NATPMP_VERSION;
  b[1] = OP_MAP_UDP;
  v.setUint16(4, r.internalPort);
  v.setUint16(6, r.suggestedPort);
  v.setUint32(8, r.lifetimeS);
  return b;
}

export interface NatpmpExternalReply {
  epochS: number;
  externalAddress: IpAddress;
}

export interface NatpmpMapReply {
  epochS: number;
  internalPort: number;
  externalPort: number;
  lifetimeS: number;
}

function common(buf: Uint8Array, op: number, minLen: number): Decoded<{ epochS: number; view: DataView }> {
  if (buf.length > MAX_REPLY) return { ok: false, problem: `reply of ${buf.length} bytes is far over NAT-PMP's ${minLen}` };
  if (buf.length >= 1 && buf[0] !== NATPMP_VERSION) return { ok: false, problem: `reply is version ${buf[0]}, not NAT-PMP's ${NATPMP_VERSION}`, version: buf[0] };
  if (buf.length < 4) return { ok: false, problem: `reply of ${buf.length} bytes is too short for NAT-PMP` };
  if (buf[1] !== RESPONSE + op) return { ok: false, problem: buf[1] < RESPONSE ? 'reply is a request, not a response' : `reply is for opcode ${buf[1] - RESPONSE}, not ${op}` };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const result = view.getUint16(2);
  // An error reply may be only 8 bytes (RFC 6886 section 3.5): version, opcode, result, epoch.
  const epochS = buf.length >= 8 ? view.getUint32(4) : undefined;
  if (result !== 0) return { ok: false, problem: `router refused: ${natpmpResultName(result)} (${result})`, resultCode: result, epochS };
  if (buf.length < minLen) return { ok: false, problem: `reply of ${buf.length} bytes is shorter than NAT-PMP's ${minLen}` };
  return { ok: true, value: { epochS: epochS!, view } };
}

export function decodeNatpmpExternal(buf: Uint8Array): Decoded<NatpmpExternalReply> {
  const c = common(buf, OP_EXTERNAL, 12);
  if (!c.ok) return c;
  return { ok: true, value: { epochS: c.value.epochS, externalAddress: IpAddress.fromValue(4, BigInt(c.value.view.getUint32(8))) } };
}

export function decodeNatpmpMapUdp(buf: Uint8Array, expect: { internalPort: number }): Decoded<NatpmpMapReply> {
  const c = common(buf, OP_MAP_UDP, 16);
  if (!c.ok) return c;
  const v = c.value.view;
  const internalPort = v.getUint16(8);
  if (internalPort !== expect.internalPort) return { ok: false, problem: `reply is for internal port ${internalPort}, not ${expect.internalPort}` };
  return { ok: true, value: { epochS: c.value.epochS, internalPort, externalPort: v.getUint16(10), lifetimeS: v.getUint32(12) } };
}
