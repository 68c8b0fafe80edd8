import { AddressError, IpAddress, type Family } from '../net/address.js';
import { Prefixed } from '../net/cidr.js';
import { Endpoint } from '../net/endpoint.js';
import { decodeGenl } from '../netlink/genl.js';
import { attr, decodeAttributes, host, NetlinkError, read, type Attribute } from '../netlink/message.js';
import { isKey } from './keys.js';
import type { DeviceState, DeviceUpdate, PeerState, PeerUpdate } from './uapi.js';

/**
 * The kernel module's generic netlink family "wireguard" (linux/wireguard.h): WG_CMD_GET_DEVICE
 * is a dump whose parts each carry some of the peers (a peer whose allowed IPs did not fit goes
 * on in the next part with only its key and more allowed IPs: adjacent peers with one key are
 * one peer); WG_CMD_SET_DEVICE takes the same tree, split the same way when it is long.
 */

export const WG_GENL_NAME = 'wireguard';
export const WG_GENL_VERSION = 1;
export const WG_CMD_GET_DEVICE = 0;
export const WG_CMD_SET_DEVICE = 1;

export const WGDEVICE_A = { IFINDEX: 1, IFNAME: 2, PRIVATE_KEY: 3, PUBLIC_KEY: 4, FLAGS: 5, LISTEN_PORT: 6, FWMARK: 7, PEERS: 8 } as const;
export const WGPEER_A = { PUBLIC_KEY: 1, PRESHARED_KEY: 2, FLAGS: 3, ENDPOINT: 4, PERSISTENT_KEEPALIVE_INTERVAL: 5, LAST_HANDSHAKE_TIME: 6, RX_BYTES: 7, TX_BYTES: 8, ALLOWEDIPS: 9, PROTOCOL_VERSION: 10 } as const;
export const WGALLOWEDIP_A = { FAMILY: 1, IPADDR: 2, CIDR_MASK: 3 } as const;
export const WGPEER_F_REMOVE_ME = 1;
export const WGPEER_F_REPLACE_ALLOWEDIPS = 2;

const WG_KEY_LEN = 32;
const IFNAMSIZ = 16;
export const AF_INET = 2;
export const AF_INET6 = 10;
const SOCKADDR_IN_LEN = 16;
const SOCKADDR_IN6_LEN = 28;

/** One request for the whole device, by name (the kernel wants exactly one of name and index). */
export function getDeviceAttributes(ifname: string): Buffer[] {
  return [attr.string(WGDEVICE_A.IFNAME, checkIfname(ifname))];
}

function checkIfname(ifname: string): string {
  if (Buffer.byteLength(ifname) > IFNAMSIZ - 1 || ifname.length === 0 || ifname.includes('\0')) {
    throw new NetlinkError(`interface name "${ifname}" must be 1-${IFNAMSIZ - 1} bytes without NUL`);
  }
  return ifname;
}

// A poll decodes the same keys, endpoints and allowed IPs every time: each distinct byte string
// is converted once (the cache is keyed by the raw bytes, so a changed value is a new entry).
const CACHE_MAX = 100_000;
const keys = new Map<string, string>();
const endpoints = new Map<string, Endpoint | null>();
const allowed = new Map<string, string>();
function cached<T>(map: Map<string, T>, raw: string, make: () => T): T {
  let v = map.get(raw);
  if (v === undefined) {
    if (map.size >= CACHE_MAX) map.clear();
    v = make();
    map.set(raw, v);
  }
  return v;
}

function addressOf(family: Family, bytes: Buffer): IpAddress {
  const value = family === 4 ? BigInt(bytes.readUInt32BE(0)) : (bytes.readBigUInt64BE(0) << 64n) | bytes.readBigUInt64BE(8);
  return IpAddress.fromValue(family, value);
}

function addressBytes(a: IpAddress): Buffer {
  const out = Buffer.alloc(a.family === 4 ? 4 : 16);
  if (a.family === 4) out.writeUInt32BE(Number(a.value), 0);
  else {
    out.writeBigUInt64BE(a.value >> 64n, 0);
    out.writeBigUInt64BE(a.value & 0xffff_ffff_ffff_ffffn, 8);
  }
  return out;
}

/** struct sockaddr_in / sockaddr_in6: family in host order, port in network order. */
export function decodeSockaddr(b: Buffer): Endpoint | undefined {
  if (b.length < 2) throw new NetlinkError(`WGPEER_A_ENDPOINT is ${b.length} bytes, too short for a sockaddr`);
  const family = host.u16(b, 0);
  if (family !== AF_INET && family !== AF_INET6) return undefined;
  const need = family === AF_INET ? SOCKADDR_IN_LEN : SOCKADDR_IN6_LEN;
  if (b.length < need) throw new NetlinkError(`WGPEER_A_ENDPOINT is ${b.length} bytes, too short for a sockaddr_in${family === AF_INET ? '' : '6'} (${need})`);
  // Only the fields that name the endpoint are the cache key (sin6_flowinfo and scope are not).
  const raw = family === AF_INET ? b.toString('latin1', 0, 8) : b.toString('latin1', 0, 4) + b.toString('latin1', 8, 24);
  const e = cached(endpoints, raw, () => {
    const port = b.readUInt16BE(2);
    if (port === 0) return null;
    return Endpoint.of(family === AF_INET ? addressOf(4, b.subarray(4, 8)) : addressOf(6, b.subarray(8, 24)), port);
  });
  return e ?? undefined;
}

export function encodeSockaddr(e: Endpoint): Buffer {
  const b = Buffer.alloc(e.family === 4 ? SOCKADDR_IN_LEN : SOCKADDR_IN6_LEN);
  host.putU16(b, e.family === 4 ? AF_INET : AF_INET6, 0);
  b.writeUInt16BE(e.port, 2);
  addressBytes(e.address).copy(b, e.family === 4 ? 4 : 8);
  return b;
}

function decodeAllowedIp(value: Buffer): string {
  let family = 0;
  let ip: Buffer | undefined;
  let cidr = -1;
  for (const a of nestedAttributes(value, 'WGPEER_A_ALLOWEDIPS entry')) {
    if (a.type === WGALLOWEDIP_A.FAMILY) family = read.u16(a, 'WGALLOWEDIP_A_FAMILY');
    else if (a.type === WGALLOWEDIP_A.IPADDR) ip = a.value;
    else if (a.type === WGALLOWEDIP_A.CIDR_MASK) cidr = read.u8(a, 'WGALLOWEDIP_A_CIDR_MASK');
  }
  if (family !== AF_INET && family !== AF_INET6) throw new NetlinkError(`an allowed IP has family ${family}, expected AF_INET (2) or AF_INET6 (10)`);
  const len = family === AF_INET ? 4 : 16;
  if (!ip || ip.length !== len) throw new NetlinkError(`an allowed IP's WGALLOWEDIP_A_IPADDR is ${ip?.length ?? 0} bytes, expected ${len}`);
  if (cidr < 0 || cidr > len * 8) throw new NetlinkError(`an allowed IP's WGALLOWEDIP_A_CIDR_MASK is ${cidr}, expected 0-${len * 8}`);
  return cached(allowed, `${family}/${cidr}/${ip.toString('latin1')}`, () => `${addressOf(family === AF_INET ? 4 : 6, ip).toString()}/${cidr}`);
}

function nestedAttributes(value: Buffer, what: string): Attribute[] {
  try {
    return decodeAttributes(value);
  } catch (err) {
    throw new NetlinkError(`${what}: ${(err as Error).message}`);
  }
}

function decodePeer(value: Buffer): PeerState {
  const peer: PeerState = { publicKey: '', allowedIps: [], persistentKeepalive: 0, lastHandshakeMs: 0, rxBytes: 0, txBytes: 0 };
  for (const a of nestedAttributes(value, 'a WGDEVICE_A_PEERS entry')) {
    switch (a.type) {
      case WGPEER_A.PUBLIC_KEY: {
        const k = read.exact(a, WG_KEY_LEN, 'WGPEER_A_PUBLIC_KEY');
        peer.publicKey = cached(keys, k.toString('latin1'), () => k.toString('base64'));
        break;
      }
      case WGPEER_A.ENDPOINT:
        peer.endpoint = decodeSockaddr(a.value);
        break;
      case WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL:
        peer.persistentKeepalive = read.u16(a, 'WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL');
        break;
      case WGPEER_A.LAST_HANDSHAKE_TIME: {
        // struct __kernel_timespec: two signed 64-bit integers, seconds then nanoseconds.
        const t = read.exact(a, 16, 'WGPEER_A_LAST_HANDSHAKE_TIME');
        peer.lastHandshakeMs = Number(host.i64(t, 0)) * 1000 + Math.floor(Number(host.i64(t, 8)) / 1e6);
        break;
      }
      case WGPEER_A.RX_BYTES:
        peer.rxBytes = read.u64(a, 'WGPEER_A_RX_BYTES');
        break;
      case WGPEER_A.TX_BYTES:
        peer.txBytes = read.u64(a, 'WGPEER_A_TX_BYTES');
        break;
      case WGPEER_A.ALLOWEDIPS:
        for (const ip of nestedAttributes(a.value, 'WGPEER_A_ALLOWEDIPS')) peer.allowedIps.push(decodeAllowedIp(ip.value));
        break;
    }
  }
  if (peer.publicKey === '') throw new NetlinkError('a peer in the device dump has no WGPEER_A_PUBLIC_KEY');
  return peer;
}

/**
 * An idle peer's attributes are the same bytes read after read (the kernel writes its public key
 * first): its decoded state is reused, so a read costs what changed, not every peer's fields.
 * Nothing mutates a PeerState once decoded.
 */
const lastPeers = new Map<string, { raw: Buffer; peer: PeerState }>();
function reusedPeer(value: Buffer): PeerState {
  const keyFirst = value.length >= 36 && host.u16(value, 0) === 36 && (host.u16(value, 2) & 0x3fff) === WGPEER_A.PUBLIC_KEY;
  if (!keyFirst) return decodePeer(value);
  const id = value.toString('latin1', 4, 36);
  const seen = lastPeers.get(id);
  if (seen && seen.raw.equals(value)) return seen.peer;
  const peer = decodePeer(value);
  if (lastPeers.size >= CACHE_MAX) lastPeers.clear();
  lastPeers.set(id, { raw: Buffer.from(value), peer });
  return peer;
}

/**
 * The parts of one WG_CMD_GET_DEVICE dump (their generic netlink payloads, in order) as one
 * device. The private key is never kept: nothing in wgp2p reads it back from the device.
 */
export function decodeDevice(parts: Buffer[]): DeviceState {
  const dev: DeviceState = { listenPort: 0, fwmark: 0, peers: [] };
  let ifname: string | undefined;
  for (const payload of parts) {
    const g = decodeGenl(payload);
    for (const a of g.attributes) {
      switch (a.type) {
        case WGDEVICE_A.IFNAME: {
          const name = read.string(a);
          if (ifname !== undefined && name !== ifname) throw new NetlinkError(`the device dump switched from interface "${ifname}" to "${name}"`);
          ifname = name;
          break;
        }
        case WGDEVICE_A.PUBLIC_KEY:
          dev.publicKey = read.exact(a, WG_KEY_LEN, 'WGDEVICE_A_PUBLIC_KEY').toString('base64');
          break;
        case WGDEVICE_A.LISTEN_PORT:
          dev.listenPort = read.u16(a, 'WGDEVICE_A_LISTEN_PORT');
          break;
        case WGDEVICE_A.FWMARK:
          dev.fwmark = read.u32(a, 'WGDEVICE_A_FWMARK');
          break;
        case WGDEVICE_A.PEERS:
          for (const p of nestedAttributes(a.value, 'WGDEVICE_A_PEERS')) {
            const peer = reusedPeer(p.value);
            const last = dev.peers.at(-1);
            // A continued peer: a new object, since a decoded PeerState may be shared with earlier reads.
            if (last && last.publicKey === peer.publicKey) dev.peers[dev.peers.length - 1] = { ...last, allowedIps: [...last.allowedIps, ...peer.allowedIps] };
            else dev.peers.push(peer);
          }
          break;
      }
    }
  }
  return dev;
}

/** Keeps a WG_CMD_SET_DEVICE message well under the socket's send buffer (≈ 200 KB by default). */
export const MAX_SET_MESSAGE_BYTES = 32 * 1024;

function keyBytes(what: string, base64: string): Buffer {
  if (!isKey(base64)) throw new NetlinkError(`${what} ${JSON.stringify(base64)} is not a WireGuard key (44 characters of base64)`);
  return Buffer.from(base64, 'base64');
}

function integer(what: string, n: number, max: number): number {
  if (!Number.isInteger(n) || n < 0 || n > max) throw new NetlinkError(`${what} ${n} must be a whole number from 0 to ${max}`);
  return n;
}

function allowedIpAttribute(text: string): Buffer {
  let p: Prefixed;
  try {
    p = Prefixed.parse(text);
  } catch (err) {
    throw new NetlinkError(`allowed IP ${JSON.stringify(text)}: ${err instanceof AddressError ? err.message : String(err)}`);
  }
  return attr.nested(0, [attr.u16(WGALLOWEDIP_A.FAMILY, p.family === 4 ? AF_INET : AF_INET6), attr.raw(WGALLOWEDIP_A.IPADDR, addressBytes(p.address)), attr.u8(WGALLOWEDIP_A.CIDR_MASK, p.prefix)]);
}

/** One peer's fragments: the first carries everything, the rest only the key and more allowed IPs. */
function peerFragments(p: PeerUpdate): Buffer[][] {
  const key = attr.raw(WGPEER_A.PUBLIC_KEY, keyBytes('public key', p.publicKey));
  if (p.remove) return [[key, attr.u32(WGPEER_A.FLAGS, WGPEER_F_REMOVE_ME)]];
  const first = [key];
  if (p.allowedIps !== undefined) first.push(attr.u32(WGPEER_A.FLAGS, WGPEER_F_REPLACE_ALLOWEDIPS));
  if (p.endpoint !== undefined) first.push(attr.raw(WGPEER_A.ENDPOINT, encodeSockaddr(p.endpoint)));
  if (p.persistentKeepalive !== undefined) first.push(attr.u16(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, integer('persistent keepalive', p.persistentKeepalive, 65535)));
  const ips = (p.allowedIps ?? []).map(allowedIpAttribute);
  const fragments: Buffer[][] = [];
  let current = first;
  let batch: Buffer[] = [];
  let size = first.reduce((n, b) => n + b.length, 0);
  // Each fragment is one peer entry; it must fit one message with the device header around it.
  const budget = MAX_SET_MESSAGE_BYTES - 256;
  for (const ip of ips) {
    if (batch.length > 0 && size + ip.length > budget) {
      current.push(attr.nested(WGPEER_A.ALLOWEDIPS, batch));
      fragments.push(current);
      current = [key];
      batch = [];
      size = key.length;
    }
    batch.push(ip);
    size += ip.length;
  }
  if (batch.length > 0) current.push(attr.nested(WGPEER_A.ALLOWEDIPS, batch));
  fragments.push(current);
  return fragments;
}

/**
 * The attribute lists of the WG_CMD_SET_DEVICE messages for one update, sent in order. Peers keep
 * their order across messages: the keepalive reset (0 then 25, which makes the device send at
 * once) is two entries for one peer, and the kernel applies entries in the order it reads them.
 */
export function setDeviceBodies(ifname: string, update: DeviceUpdate): Buffer[][] {
  const head = attr.string(WGDEVICE_A.IFNAME, checkIfname(ifname));
  const device: Buffer[] = [];
  if (update.privateKey !== undefined) device.push(attr.raw(WGDEVICE_A.PRIVATE_KEY, keyBytes('private key', update.privateKey)));
  if (update.listenPort !== undefined) device.push(attr.u16(WGDEVICE_A.LISTEN_PORT, integer('listen port', update.listenPort, 65535)));
  const bodies: Buffer[][] = [];
  let peers: Buffer[] = [];
  let size = head.length + device.reduce((n, b) => n + b.length, 0);
  const flush = () => {
    bodies.push([head, ...(bodies.length === 0 ? device : []), ...(peers.length ? [attr.nested(WGDEVICE_A.PEERS, peers)] : [])]);
    peers = [];
    size = head.length;
  };
  for (const p of update.peers ?? []) {
    for (const fragment of peerFragments(p)) {
      const entry = attr.nested(0, fragment);
      if (peers.length > 0 && size + entry.length + 4 > MAX_SET_MESSAGE_BYTES) flush();
      peers.push(entry);
      size += entry.length;
    }
  }
  if (peers.length > 0 || bodies.length === 0) flush();
  return bodies;
}
