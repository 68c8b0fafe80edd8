import { endianness } from 'node:os';

/**
 * Netlink messages and attributes (linux/netlink.h): a 16-byte header, then a payload; attributes
 * are type-length-value records padded to 4 bytes. Integers are in the host's byte order, except
 * where a structure says otherwise (a sockaddr's port). The parsers here are linear, never read
 * past a length they were given, and refuse a record that claims more bytes than there are: what
 * the kernel sends is trusted to be well-formed, but a bug in a codec must not become a peer with
 * half its fields.
 */

export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
/** In an NLMSG_ERROR: the request was not echoed back in full. */
export const NLM_F_CAPPED = 0x100;
/** In an NLMSG_ERROR or NLMSG_DONE: extended-ack attributes follow. */
export const NLM_F_ACK_TLVS = 0x200;

export const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;
const NLMSGERR_ATTR_MSG = 1;

export const LITTLE_ENDIAN = endianness() === 'LE';

export class NetlinkError extends Error {
  override name = 'NetlinkError';
  constructor(
    message: string,
    /** The kernel's errno (positive), when the kernel refused the request. */
    readonly errno?: number,
  ) {
    super(message);
  }
}

export const align4 = (n: number): number => (n + 3) & ~3;

export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Buffer;
}

/** Host-order integer access, so the codecs read like the C structures they mirror. */
export const host = {
  u16: (b: Buffer, at: number): number => (LITTLE_ENDIAN ? b.readUInt16LE(at) : b.readUInt16BE(at)),
  u32: (b: Buffer, at: number): number => (LITTLE_ENDIAN ? b.readUInt32LE(at) : b.readUInt32BE(at)),
  i32: (b: Buffer, at: number): number => (LITTLE_ENDIAN ? b.readInt32LE(at) : b.readInt32BE(at)),
  u64: (b: Buffer, at: number): bigint => (LITTLE_ENDIAN ? b.readBigUInt64LE(at) : b.readBigUInt64BE(at)),
  i64: (b: Buffer, at: number): bigint => (LITTLE_ENDIAN ? b.readBigInt64LE(at) : b.readBigInt64BE(at)),
  putU16: (b: Buffer, v: number, at: number): number => (LITTLE_ENDIAN ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at)),
  putU32: (b: Buffer, v: number, at: number): number => (LITTLE_ENDIAN ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at)),
};

export function encodeMessage(m: { type: number; flags: number; seq: number; pid?: number; payload: Buffer }): Buffer {
  const len = NLMSG_HDRLEN + m.payload.length;
  const out = Buffer.alloc(align4(len));
  host.putU32(out, len, 0);
  host.putU16(out, m.type, 4);
  host.putU16(out, m.flags, 6);
  host.putU32(out, m.seq >>> 0, 8);
  host.putU32(out, (m.pid ?? 0) >>> 0, 12);
  m.payload.copy(out, NLMSG_HDRLEN);
  return out;
}

/** The messages of one datagram (a dump packs several into each). */
export function decodeMessages(buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let at = 0;
  while (at + NLMSG_HDRLEN <= buf.length) {
    const len = host.u32(buf, at);
    if (len < NLMSG_HDRLEN || at + len > buf.length) {
      throw new NetlinkError(`netlink message at byte ${at} claims ${len} bytes, but ${buf.length - at} remain (header needs ${NLMSG_HDRLEN})`);
    }
    out.push({ type: host.u16(buf, at + 4), flags: host.u16(buf, at + 6), seq: host.u32(buf, at + 8), pid: host.u32(buf, at + 12), payload: buf.subarray(at + NLMSG_HDRLEN, at + len) });
    at += align4(len);
  }
  if (at < buf.length) throw new NetlinkError(`${buf.length - at} trailing bytes after the last netlink message: not a whole header`);
  return out;
}

export interface Attribute {
  /** The type without the NESTED and NET_BYTEORDER flags. */
  type: number;
  value: Buffer;
}

/** The attributes of a payload or of a nested attribute's value. */
export function decodeAttributes(buf: Buffer): Attribute[] {
  const out: Attribute[] = [];
  let at = 0;
  while (at + NLA_HDRLEN <= buf.length) {
    const len = host.u16(buf, at);
    if (len < NLA_HDRLEN || at + len > buf.length) {
      throw new NetlinkError(`netlink attribute at byte ${at} claims ${len} bytes, but ${buf.length - at} remain (header needs ${NLA_HDRLEN})`);
    }
    out.push({ type: host.u16(buf, at + 2) & NLA_TYPE_MASK, value: buf.subarray(at + NLA_HDRLEN, at + len) });
    at += align4(len);
  }
  // The last attribute's padding may be cut off by the enclosing length; anything else is not an attribute.
  if (at < buf.length && buf.length - at >= NLA_HDRLEN) throw new NetlinkError(`${buf.length - at} trailing bytes after the last netlink attribute`);
  return out;
}

/** Attribute encoders: each returns the whole record, padded, ready to concatenate. */
export const attr = {
  raw(type: number, value: Buffer): Buffer {
    const len = NLA_HDRLEN + value.length;
    if (len > 0xffff) throw new NetlinkError(`netlink attribute ${type} would be ${len} bytes; an attribute holds at most 65535`);
    const out = Buffer.alloc(align4(len));
    host.putU16(out, len, 0);
    host.putU16(out, type, 2);
    value.copy(out, NLA_HDRLEN);
    return out;
  },
  u8(type: number, v: number): Buffer {
    return attr.raw(type, Buffer.from([v & 0xff]));
  },
  u16(type: number, v: number): Buffer {
    const b = Buffer.alloc(2);
    host.putU16(b, v, 0);
    return attr.raw(type, b);
  },
  u32(type: number, v: number): Buffer {
    const b = Buffer.alloc(4);
    host.putU32(b, v >>> 0, 0);
    return attr.raw(type, b);
  },
  /** NLA_NUL_STRING: the terminating NUL is part of the value. */
  string(type: number, v: string): Buffer {
    return attr.raw(type, Buffer.concat([Buffer.from(v, 'utf8'), Buffer.alloc(1)]));
  },
  nested(type: number, children: Buffer[]): Buffer {
    return attr.raw(type | NLA_F_NESTED, Buffer.concat(children));
  },
};

/** Fixed-size attribute readers that name the attribute when its length is wrong. */
export const read = {
  exact(a: Attribute, len: number, what: string): Buffer {
    if (a.value.length !== len) throw new NetlinkError(`${what} is ${a.value.length} bytes, expected ${len}`);
    return a.value;
  },
  u8: (a: Attribute, what: string): number => read.exact(a, 1, what)[0],
  u16: (a: Attribute, what: string): number => host.u16(read.exact(a, 2, what), 0),
  u32: (a: Attribute, what: string): number => host.u32(read.exact(a, 4, what), 0),
  u64: (a: Attribute, what: string): number => Number(host.u64(read.exact(a, 8, what), 0)),
  /** NLA_NUL_STRING; a missing NUL is tolerated, bytes after the first NUL are not part of it. */
  string(a: Attribute): string {
    const nul = a.value.indexOf(0);
    return a.value.subarray(0, nul < 0 ? a.value.length : nul).toString('utf8');
  },
};

export interface Acknowledgement {
  /** 0 for success, else the positive errno. */
  errno: number;
  /** The kernel's extended-ack message, when it sent one. */
  message?: string;
}

function extAckMessage(tlvs: Buffer): string | undefined {
  try {
    const m = decodeAttributes(tlvs).find((a) => a.type === NLMSGERR_ATTR_MSG);
    return m ? read.string(m) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * NLMSG_ERROR (struct nlmsgerr: an int, then the request's header, its payload unless CAPPED,
 * then extended-ack attributes if ACK_TLVS) and NLMSG_DONE (an int, then the same attributes).
 */
export function decodeAcknowledgement(m: NetlinkMessage): Acknowledgement {
  if (m.payload.length < 4) {
    // A DONE with no payload (some families send one) is success.
    if (m.type === NLMSG_DONE) return { errno: 0 };
    throw new NetlinkError(`netlink ${m.type === NLMSG_ERROR ? 'error' : 'done'} message has ${m.payload.length} payload bytes, expected at least 4`);
  }
  const error = host.i32(m.payload, 0);
  const errno = error === 0 ? 0 : -error;
  let tlvAt = 4;
  if (m.type === NLMSG_ERROR) {
    if (m.payload.length >= 4 + NLMSG_HDRLEN) {
      const origLen = host.u32(m.payload, 4);
      tlvAt = m.flags & NLM_F_CAPPED ? 4 + NLMSG_HDRLEN : 4 + align4(origLen);
    } else tlvAt = m.payload.length;
  }
  const message = m.flags & NLM_F_ACK_TLVS && tlvAt < m.payload.length ? extAckMessage(m.payload.subarray(tlvAt)) : undefined;
  return message === undefined ? { errno } : { errno, message };
}
