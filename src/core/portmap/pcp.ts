import { IpAddress } from '../net/address.js';

/**
 * The Port Control Protocol (RFC 6887) as bytes: MAP and ANNOUNCE requests, and the responses to
 * them. Only what an agent needs to map WireGuard's UDP port on its IPv4 gateway: no PEER, no
 * options of our own (a response's options are walked and bounded, not used).
 *
 * Everything a router sends is untrusted: decoding is one linear pass over at most
 * PCP_MAX_MESSAGE bytes, and every way a reply can be wrong is a `problem` in words, never a
 * throw. A reply that decodes is still only what the router claims; the attempt proves it.
 */

export const PCP_VERSION = 2;
export const PCP_SERVER_PORT = 5351;
/** RFC 6887 section 7: messages are at most 1100 bytes; anything longer is refused unread. */
export const PCP_MAX_MESSAGE = 1100;
export const PCP_HEADER_LEN = 24;
export const PCP_MAP_DATA_LEN = 36;
export const PCP_NONCE_LEN = 12;

export const PCP_OPCODES = { announce: 0, map: 1, peer: 2 } as const;
export type PcpOpcode = keyof typeof PCP_OPCODES;

/** IANA protocol numbers for the MAP opcode's protocol field. */
export const IPPROTO_UDP = 17;

/** RFC 6887 section 7.4. */
export const PCP_RESULT_NAMES: Readonly<Record<number, string>> = {
  0: 'SUCCESS',
  1: 'UNSUPP_VERSION',
  2: 'NOT_AUTHORIZED',
  3: 'MALFORMED_REQUEST',
  4: 'UNSUPP_OPCODE',
  5: 'UNSUPP_OPTION',
  6: 'MALFORMED_OPTION',
  7: 'NETWORK_FAILURE',
  8: 'NO_RESOURCES',
  9: 'UNSUPP_PROTOCOL',
  10: 'USER_EX_QUOTA',
  11: 'CANNOT_PROVIDE_EXTERNAL',
  12: 'ADDRESS_MISMATCH',
  13: 'EXCESSIVE_REMOTE_PEERS',
};

export function pcpResultName(code: number): string {
  return PCP_RESULT_NAMES[code] ?? `unknown result ${code}`;
}

/** An IPv4 address goes into PCP's 128-bit address fields as ::ffff:a.b.c.d (RFC 6887 section 5). */
function writeAddress(buf: Uint8Array, at: number, a: IpAddress): void {
  const v = a.family === 4 ? (0xffffn << 32n) | a.value : a.value;
  for (let i = 0; i < 16; i++) buf[at + i] = Number((v >> BigInt((15 - i) * 8)) & 0xffn);
}

function readAddress(buf: Uint8Array, at: number): IpAddress {
  let v = 0n;
  for (let i = 0; i < 16; i++) v = (v << 8n) | BigInt(buf[at + i]);
  // An IPv4-mapped address is the IPv4 address it carries; the all-zeros address stays IPv6 (::).
  return IpAddress.fromValue(6, v).unmapped();
}

function u32(buf: Uint8Array, at: number): number {
  return ((buf[at] << 24) | (buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]) >>> 0;
}

function u16(buf: Uint8Array, at: number): number {
  return (buf[at] << 8) | buf[at + 1];
}

function put32(buf: Uint8Array, at: number, v: number): void {
  buf[at] = (v >>> 24) & 0xff;
  buf[at + 1] = (v >>> 16) & 0xff;
  buf[at + 2] = (v >>> 8) & 0xff;
  buf[at + 3] = v & 0xff;
}

function put16(buf: Uint8Array, at: number, v: number): void {
  buf[at] = (v >>> 8) & 0xff;
  buf[at + 1] = v & 0xff;
}

function header(opcode: number, lifetimeS: number, client: IpAddress, dataLen: number): Uint8Array {
  if (!Number.isInteger(lifetimeS) || lifetimeS < 0 || lifetimeS > 0xffffffff) throw new RangeError(`PCP lifetime ${lifetimeS} must be a whole number of seconds, 0 to 2^32-1`);
  const buf = new Uint8Array(PCP_HEADER_LEN + dataLen);
  buf[0] = PCP_VERSION;
  buf[1] = opcode & 0x7f; // R = 0: a request
  put32(buf, 4, lifetimeS);
  writeAddress(buf, 8, client);
  return buf;
}

export interface PcpMapRequest {
  /** The address this host sends from toward the server (the server checks it: ADDRESS_MISMATCH). */
  client: IpAddress;
  /** 96 random bits that name this mapping; a renewal or delete repeats them (RFC 6887 section 11.1). */
  nonce: Uint8Array;
  internalPort: number;
  /** The port we would like outside; the server may assign another. 0: any. */
  suggestedPort: number;
  /** The external address we would like; unspecified (0.0.0.0 as ::ffff:0.0.0.0) lets the server choose. */
  suggestedAddress?: IpAddress;
  /** Seconds; 0 deletes the mapping. */
  lifetimeS: number;
  protocol?: number;
}

/** A MAP request (RFC 6887 sections 7.1 and 11.1): 24 bytes of header, 36 of MAP data. */
export function encodePcpMap(r: PcpMapRequest): Uint8Array {
  if (r.nonce.length !== PCP_NONCE_LEN) throw new RangeError(`a PCP nonce is ${PCP_NONCE_LEN} bytes, not ${r.nonce.length}`);
  for (const [name, p] of [['internalPort', r.internalPort], ['suggestedPort', r.suggestedPort]] as const) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new RangeError(`PCP ${name} ${p} must be 0-65535`);
  }
  // RFC 6887 section 11.1: internal port 0 means "all ports", which we never want.
  if (r.internalPort === 0) throw new RangeError('PCP internalPort 0 would map every port; give the WireGuard listen port');
  const buf = header(PCP_OPCODES.map, r.lifetimeS, r.client, PCP_MAP_DATA_LEN);
  const d = PCP_HEADER_LEN;
  buf.set(r.nonce, d);
  buf[d + 12] = r.protocol ?? IPPROTO_UDP;
  put16(buf, d + 16, r.internalPort);
  put16(buf, d + 18, r.suggestedPort);
  writeAddress(buf, d + 20, r.suggestedAddress ?? IpAddress.fromValue(4, 0n));
  return buf;
}

/** An ANNOUNCE request (RFC 6887 section 14.1): the header alone, lifetime 0. The answer carries the server's epoch. */
export function encodePcpAnnounce(client: IpAddress): Uint8Array {
  return header(PCP_OPCODES.announce, 0, client, 0);
}

export interface PcpResponseHeader {
  opcode: number;
  resultCode: number;
  /** Seconds: how long the mapping lasts (success), or how long the error will (failure). */
  lifetimeS: number;
  /** Seconds since the server's state began; going backwards means it lost its mappings (section 8.5). */
  epochS: number;
}

export interface PcpMapResponse extends PcpResponseHeader {
  nonce: Uint8Array;
  protocol: number;
  internalPort: number;
  externalPort: number;
  externalAddress: IpAddress;
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; problem: string; /** Present when the header decoded: a result the server really sent. */ resultCode?: number; epochS?: number; version?: number };

function decodeHeader(buf: Uint8Array, expectOpcode: number): Decoded<PcpResponseHeader> {
  if (buf.length > PCP_MAX_MESSAGE) return { ok: false, problem: `reply of ${buf.length} bytes is over PCP's ${PCP_MAX_MESSAGE}` };
  // A NAT-PMP-only server answers a PCP request with a 4-byte-or-longer version-0 reply (RFC 6887 section 9).
  if (buf.length >= 1 && buf[0] !== PCP_VERSION) return { ok: false, problem: `reply is version ${buf[0]}, not PCP's ${PCP_VERSION}`, version: buf[0] };
  if (buf.length < PCP_HEADER_LEN) return { ok: false, problem: `reply of ${buf.length} bytes is shorter than PCP's ${PCP_HEADER_LEN}-byte header` };
  if (buf.length % 4 !== 0) return { ok: false, problem: `reply of ${buf.length} bytes is not a multiple of 4 (RFC 6887 section 7)` };
  if ((buf[1] & 0x80) === 0) return { ok: false, problem: 'reply is a request (R bit clear), not a response' };
  const opcode = buf[1] & 0x7f;
  if (opcode !== expectOpcode) return { ok: false, problem: `reply is for opcode ${opcode}, not ${expectOpcode}` };
  return { ok: true, value: { opcode, resultCode: buf[3], lifetimeS: u32(buf, 4), epochS: u32(buf, 8) } };
}

/** Walks the options after `from` (section 7.3) only to check that they fit; none is used. */
function checkOptions(buf: Uint8Array, from: number): string | null {
  let at = from;
  while (at < buf.length) {
    if (at + 4 > buf.length) return `option header at byte ${at} is cut short`;
    const len = u16(buf, at + 2);
    const padded = (len + 3) & ~3;
    if (at + 4 + padded > buf.length) return `option ${buf[at]} at byte ${at} says ${len} bytes, more than the reply holds`;
    at += 4 + padded;
  }
  return null;
}

function sameNonce(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * A MAP response to the request with `nonce`. A result other than SUCCESS is a problem (with its
 * code); so is a reply to another mapping (nonce, protocol or internal port differ), which an
 * off-path sender or a confused server may send.
 */
export function decodePcpMap(buf: Uint8Array, expect: { nonce: Uint8Array; internalPort: number; protocol?: number }): Decoded<PcpMapResponse> {
  const h = decodeHeader(buf, PCP_OPCODES.map);
  if (!h.ok) return h;
  if (buf.length < PCP_HEADER_LEN + PCP_MAP_DATA_LEN) return { ok: false, problem: `MAP reply of ${buf.length} bytes is shorter than ${PCP_HEADER_LEN + PCP_MAP_DATA_LEN}` };
  const d = PCP_HEADER_LEN;
  const nonce = buf.slice(d, d + PCP_NONCE_LEN);
  if (!sameNonce(nonce, expect.nonce)) return { ok: false, problem: 'MAP reply carries another mapping nonce (not an answer to our request)' };
  const { resultCode, epochS } = h.value;
  if (resultCode !== 0) return { ok: false, problem: `router refused the mapping: ${pcpResultName(resultCode)} (${resultCode})`, resultCode, epochS };
  const protocol = buf[d + 12];
  const internalPort = u16(buf, d + 16);
  const externalPort = u16(buf, d + 18);
  const externalAddress = readAddress(buf, d + 20);
  if (protocol !== (expect.protocol ?? IPPROTO_UDP)) return { ok: false, problem: `MAP reply is for protocol ${protocol}, not ${expect.protocol ?? IPPROTO_UDP}` };
  if (internalPort !== expect.internalPort) return { ok: false, problem: `MAP reply is for internal port ${internalPort}, not ${expect.internalPort}` };
  const opts = checkOptions(buf, d + PCP_MAP_DATA_LEN);
  if (opts) return { ok: false, problem: opts };
  return { ok: true, value: { ...h.value, nonce, protocol, internalPort, externalPort, externalAddress } };
}

/** An ANNOUNCE response: only its epoch (and result) matter. */
export function decodePcpAnnounce(buf: Uint8Array): Decoded<PcpResponseHeader> {
  const h = decodeHeader(buf, PCP_OPCODES.announce);
  if (!h.ok) return h;
  if (h.value.resultCode !== 0) return { ok: false, problem: `router answered ANNOUNCE with ${pcpResultName(h.value.resultCode)} (${h.value.resultCode})`, resultCode: h.value.resultCode, epochS: h.value.epochS };
  const opts = checkOptions(buf, PCP_HEADER_LEN);
  if (opts) return { ok: false, problem: opts };
  return h;
}
