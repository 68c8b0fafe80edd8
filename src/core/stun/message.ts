import { crc32 } from 'node:zlib';
import { IpAddress } from '../net/address.js';
import { Endpoint } from '../net/endpoint.js';

/**
 * The STUN messages `wgp2p doctor` and the hub's STUN responder exchange: RFC 8489 (was 5389)
 * Binding requests and responses with the behaviour-discovery attributes of RFC 5780
 * (CHANGE-REQUEST, RESPONSE-PORT, OTHER-ADDRESS, PADDING). Standard STUN, so doctor can also ask
 * any STUN server for a mapping, and the hub answers any STUN client.
 *
 * Decoding is one linear pass over at most MAX_MESSAGE bytes; anything malformed is a refusal
 * with the reason, never an exception. Attributes this code does not use are skipped (RFC 8489
 * section 14: comprehension-optional ones are ignored; a request with an unknown
 * comprehension-required one is answered 420 by the responder).
 */

export const MAGIC_COOKIE = 0x2112a442;
export const HEADER_BYTES = 20;
/** RFC 8489 section 6.1: without path MTU knowledge, messages stay under 548 bytes over IPv4. */
export const MAX_MESSAGE = 548;

export const METHOD_BINDING = 0x001;
export type MessageClass = 'request' | 'indication' | 'success' | 'error';

export const ATTR = {
  MAPPED_ADDRESS: 0x0001,
  CHANGE_REQUEST: 0x0003,
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  XOR_MAPPED_ADDRESS: 0x0020,
  PADDING: 0x0026,
  RESPONSE_PORT: 0x0027,
  SOFTWARE: 0x8022,
  FINGERPRINT: 0x8028,
  RESPONSE_ORIGIN: 0x802b,
  OTHER_ADDRESS: 0x802c,
} as const;

/** RFC 8489 section 14.7: XORed into the CRC-32 so that FINGERPRINT never matches another protocol's checksum. */
const FINGERPRINT_XOR = 0x5354554e;

export interface StunMessage {
  cls: MessageClass;
  method: number;
  /** 12 bytes. */
  transactionId: Buffer;
  /** RFC 5780 CHANGE-REQUEST: answer from the other address and/or the other port. */
  changeIp?: boolean;
  changePort?: boolean;
  /** RFC 5780 RESPONSE-PORT: answer to this port of the request's source address. */
  responsePort?: number;
  /** Bytes of PADDING (RFC 5780 section 7.6); the responder answers no request with more bytes than it sent. */
  padding?: number;
  mapped?: Endpoint;
  otherAddress?: Endpoint;
  responseOrigin?: Endpoint;
  error?: { code: number; reason: string };
  /** Comprehension-required attributes (type < 0x8000) this code does not know, in order of appearance. */
  unknown?: number[];
  /** UNKNOWN-ATTRIBUTES of a 420 error response: what the other side did not know. */
  unknownAttributes?: number[];
  /** Whether a FINGERPRINT was present (and matched: a wrong one refuses the message). */
  fingerprint?: boolean;
}

export type Decoded = { ok: true; message: StunMessage } | { ok: false; reason: string };

const CLASS_BITS: Record<MessageClass, number> = { request: 0x000, indication: 0x010, success: 0x100, error: 0x110 };

/** RFC 8489 section 5: the class bits C1 C0 sit at bits 8 and 4 of the type, the method's 12 bits around them. */
function messageType(cls: MessageClass, method: number): number {
  return ((method & 0xf80) << 2) | ((method & 0x070) << 1) | (method & 0x00f) | CLASS_BITS[cls];
}

function splitType(t: number): { cls: MessageClass; method: number } {
  const c = t & 0x110;
  const cls = (Object.keys(CLASS_BITS) as MessageClass[]).find((k) => CLASS_BITS[k] === c)!;
  const method = ((t & 0x3e00) >> 2) | ((t & 0x00e0) >> 1) | (t & 0x000f);
  return { cls, method };
}

/** The 16 bytes an address is XORed with: the cookie, then (IPv6) the transaction id. */
function xorKey(transactionId: Buffer): Buffer {
  const k = Buffer.alloc(16);
  k.writeUInt32BE(MAGIC_COOKIE, 0);
  transactionId.copy(k, 4);
  return k;
}

function addressBytes(a: IpAddress): Buffer {
  const n = a.family === 4 ? 4 : 16;
  const b = Buffer.alloc(n);
  let v = a.value;
  for (let i = n - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

function bytesToAddress(b: Buffer): IpAddress {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return IpAddress.fromValue(b.length === 4 ? 4 : 6, v);
}

function encodeAddress(e: Endpoint, xor: Buffer | null): Buffer {
  const addr = addressBytes(e.address);
  const v = Buffer.alloc(4 + addr.length);
  v[1] = e.address.family === 4 ? 0x01 : 0x02;
  v.writeUInt16BE(xor ? e.port ^ (MAGIC_COOKIE >>> 16) : e.port, 2);
  for (let i = 0; i < addr.length; i++) v[4 + i] = xor ? addr[i] ^ xor[i] : addr[i];
  return v;
}

function decodeAddress(v: Buffer, xor: Buffer | null): Endpoint | string {
  if (v.length < 4) return 'is shorter than 4 bytes';
  const family = v[1];
  const n = family === 0x01 ? 4 : family === 0x02 ? 16 : 0;
  if (n === 0) return `has address family ${family} (1 is IPv4, 2 is IPv6)`;
  if (v.length !== 4 + n) return `is ${v.length} bytes long, an IPv${n === 4 ? 4 : 6} address takes ${4 + n}`;
  const raw = Buffer.from(v.subarray(4));
  if (xor) for (let i = 0; i < n; i++) raw[i] ^= xor[i];
  const port = xor ? v.readUInt16BE(2) ^ (MAGIC_COOKIE >>> 16) : v.readUInt16BE(2);
  if (port === 0) return 'has port 0';
  return Endpoint.of(bytesToAddress(raw), port);
}

function attr(type: number, value: Buffer): Buffer {
  const pad = (4 - (value.length % 4)) % 4;
  const b = Buffer.alloc(4 + value.length + pad);
  b.writeUInt16BE(type, 0);
  b.writeUInt16BE(value.length, 2);
  value.copy(b, 4);
  return b;
}

/** A fresh transaction id (RFC 8489 section 6: 96 random bits). */
export function newTransactionId(random: (n: number) => Buffer): Buffer {
  return random(12);
}

/** Encodes `m` with a FINGERPRINT (so that the other side can tell STUN from stray datagrams). */
export function encode(m: StunMessage): Buffer {
  if (m.transactionId.length !== 12) throw new Error('a STUN transaction id is 12 bytes');
  const parts: Buffer[] = [];
  const key = xorKey(m.transactionId);
  if (m.changeIp || m.changePort) {
    const v = Buffer.alloc(4);
    v.writeUInt32BE((m.changeIp ? 0x04 : 0) | (m.changePort ? 0x02 : 0), 0);
    parts.push(attr(ATTR.CHANGE_REQUEST, v));
  }
  if (m.responsePort !== undefined) {
    const v = Buffer.alloc(4);
    v.writeUInt16BE(m.responsePort, 0);
    parts.push(attr(ATTR.RESPONSE_PORT, v.subarray(0, 2)));
  }
  if (m.mapped) parts.push(attr(ATTR.XOR_MAPPED_ADDRESS, encodeAddress(m.mapped, key)));
  if (m.responseOrigin) parts.push(attr(ATTR.RESPONSE_ORIGIN, encodeAddress(m.responseOrigin, null)));
  if (m.otherAddress) parts.push(attr(ATTR.OTHER_ADDRESS, encodeAddress(m.otherAddress, null)));
  if (m.error) {
    const reason = Buffer.from(m.error.reason.slice(0, 127), 'utf8');
    const v = Buffer.alloc(4 + reason.length);
    v[2] = Math.floor(m.error.code / 100);
    v[3] = m.error.code % 100;
    reason.copy(v, 4);
    parts.push(attr(ATTR.ERROR_CODE, v));
  }
  if (m.unknownAttributes?.length) {
    const v = Buffer.alloc(m.unknownAttributes.length * 2);
    m.unknownAttributes.forEach((t, i) => v.writeUInt16BE(t, i * 2));
    parts.push(attr(ATTR.UNKNOWN_ATTRIBUTES, v));
  }
  if (m.padding) parts.push(attr(ATTR.PADDING, Buffer.alloc(m.padding)));
  const body = Buffer.concat(parts);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(messageType(m.cls, m.method), 0);
  header.writeUInt16BE(body.length + 8, 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  m.transactionId.copy(header, 8);
  const unsigned = Buffer.concat([header, body]);
  const fp = Buffer.alloc(4);
  fp.writeUInt32BE((crc32(unsigned) ^ FINGERPRINT_XOR) >>> 0, 0);
  return Buffer.concat([unsigned, attr(ATTR.FINGERPRINT, fp)]);
}

/** Quick test for "is this STUN at all" (RFC 8489 section 6: top two bits zero, the cookie in place). */
export function looksLikeStun(b: Buffer): boolean {
  return b.length >= HEADER_BYTES && (b[0] & 0xc0) === 0 && b.readUInt32BE(4) === MAGIC_COOKIE;
}

export function decode(b: Buffer): Decoded {
  const no = (reason: string): Decoded => ({ ok: false, reason });
  if (b.length < HEADER_BYTES) return no(`${b.length} bytes is shorter than a STUN header (20)`);
  if (b.length > MAX_MESSAGE) return no(`${b.length} bytes is longer than ${MAX_MESSAGE}`);
  if (!looksLikeStun(b)) return no('not STUN (the first two bits or the magic cookie are wrong)');
  const length = b.readUInt16BE(2);
  if (length % 4 !== 0) return no(`message length ${length} is not a multiple of 4`);
  if (HEADER_BYTES + length !== b.length) return no(`message length ${length} does not match the ${b.length - HEADER_BYTES} bytes after the header`);
  const { cls, method } = splitType(b.readUInt16BE(0));
  const transactionId = Buffer.from(b.subarray(8, 20));
  const key = xorKey(transactionId);
  const m: StunMessage = { cls, method, transactionId };
  let at = HEADER_BYTES;
  while (at < b.length) {
    if (b.length - at < 4) return no(`attribute at byte ${at} has no room for its header`);
    const type = b.readUInt16BE(at);
    const len = b.readUInt16BE(at + 2);
    const start = at + 4;
    const end = start + len;
    if (end > b.length) return no(`attribute 0x${type.toString(16)} at byte ${at} runs past the end`);
    const v = b.subarray(start, end);
    const padded = start + len + ((4 - (len % 4)) % 4);
    if (m.fingerprint !== undefined) return no('an attribute follows FINGERPRINT, which must be last');
    switch (type) {
      case ATTR.XOR_MAPPED_ADDRESS:
      case ATTR.MAPPED_ADDRESS:
      case ATTR.OTHER_ADDRESS:
      case ATTR.RESPONSE_ORIGIN: {
        const e = decodeAddress(v, type === ATTR.XOR_MAPPED_ADDRESS ? key : null);
        if (typeof e === 'string') return no(`attribute 0x${type.toString(16).padStart(4, '0')} ${e}`);
        // XOR-MAPPED-ADDRESS wins over the older MAPPED-ADDRESS (RFC 8489 section 14.1).
        if (type === ATTR.XOR_MAPPED_ADDRESS || (type === ATTR.MAPPED_ADDRESS && !m.mapped)) m.mapped = e;
        if (type === ATTR.OTHER_ADDRESS) m.otherAddress = e;
        if (type === ATTR.RESPONSE_ORIGIN) m.responseOrigin = e;
        break;
      }
      case ATTR.CHANGE_REQUEST: {
        if (len !== 4) return no(`CHANGE-REQUEST is ${len} bytes, not 4`);
        const flags = v.readUInt32BE(0);
        m.changeIp = (flags & 0x04) !== 0;
        m.changePort = (flags & 0x02) !== 0;
        break;
      }
      case ATTR.RESPONSE_PORT:
        if (len !== 2) return no(`RESPONSE-PORT is ${len} bytes, not 2`);
        m.responsePort = v.readUInt16BE(0);
        if (m.responsePort === 0) return no('RESPONSE-PORT is 0');
        break;
      case ATTR.PADDING:
        m.padding = len;
        break;
      case ATTR.ERROR_CODE:
        if (len < 4) return no(`ERROR-CODE is ${len} bytes, shorter than 4`);
        m.error = { code: (v[2] & 0x07) * 100 + v[3], reason: v.subarray(4).toString('utf8') };
        break;
      case ATTR.FINGERPRINT: {
        if (len !== 4) return no(`FINGERPRINT is ${len} bytes, not 4`);
        // Computed over the message up to the attribute, with the length field as sent (it already counts FINGERPRINT).
        const want = (crc32(b.subarray(0, at)) ^ FINGERPRINT_XOR) >>> 0;
        if (v.readUInt32BE(0) !== want) return no('FINGERPRINT does not match the message (damaged, or not STUN)');
        m.fingerprint = true;
        break;
      }
      case ATTR.UNKNOWN_ATTRIBUTES:
        m.unknownAttributes = [];
        for (let i = 0; i + 1 < len && m.unknownAttributes.length < 32; i += 2) m.unknownAttributes.push(v.readUInt16BE(i));
        break;
      case ATTR.USERNAME:
      case ATTR.MESSAGE_INTEGRITY:
        // Known, and unused: the responder authenticates nobody (it tells a sender only its own address).
        break;
      default:
        if (type < 0x8000) (m.unknown ??= []).push(type);
    }
    at = padded;
  }
  if (at !== b.length) return no('the last attribute is not padded to 4 bytes');
  return { ok: true, message: m };
}
