import { createHash } from 'node:crypto';
import { createConnection } from 'node:net';
import { Endpoint } from '../net/endpoint.js';
import { hexToKey, isKey, keyToHex, publicKeyOf } from './keys.js';

/** Where wireguard-go (and the kernel module's wg(8) compatibility) put the per-interface UAPI socket. */
export const UAPI_DIR = process.env.WGP2P_UAPI_DIR ?? '/var/run/wireguard';

export function uapiSocketPath(ifname: string): string {
  return `${UAPI_DIR}/${ifname}.sock`;
}

export interface PeerState {
  publicKey: string;
  /** Where WireGuard sends to this peer: set by us, or moved by WireGuard to the source of the last authenticated packet. */
  endpoint?: Endpoint;
  allowedIps: string[];
  persistentKeepalive: number;
  /** Milliseconds since the epoch of the last handshake, 0 if none (as the device reports it). */
  lastHandshakeMs: number;
  rxBytes: number;
  txBytes: number;
}

export interface DeviceState {
  publicKey?: string;
  listenPort: number;
  fwmark: number;
  peers: PeerState[];
}

export class UapiError extends Error {
  override name = 'UapiError';
}

/** One request/response exchange over the UAPI socket (see wireguard.com/xplatform). */
export function uapiRequest(ifname: string, request: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(uapiSocketPath(ifname));
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new UapiError(`${ifname}: UAPI did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(request));
    sock.on('data', (d: string) => {
      buf += d;
      // A response ends with an empty line, after the errno line.
      if (buf.endsWith('\n\n')) {
        clearTimeout(timer);
        sock.end();
        resolve(buf);
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = err.code === 'ENOENT' ? ` (no WireGuard interface "${ifname}" is up: ${uapiSocketPath(ifname)} is missing)` : '';
      reject(new UapiError(`${ifname}: ${err.message}${hint}`));
    });
  });
}

/** The errno line of a UAPI response (0 is success), -1 if it has none. It is the last line: searched from the end. */
export function errnoOf(response: string | Buffer): number {
  const buf = typeof response === 'string' ? Buffer.from(response, 'latin1') : response;
  let at = buf.lastIndexOf(ERRNO_LINE);
  if (at >= 0) at += 1;
  else if (buf.subarray(0, ERRNO.length).equals(ERRNO)) at = 0;
  else return -1;
  const eol = buf.indexOf(0x0a, at);
  if (eol < 0) return -1;
  const digits = buf.toString('latin1', at + ERRNO.length, eol);
  return /^-?\d+$/.test(digits) ? Number(digits) : -1;
}

const ERRNO = Buffer.from('errno=', 'latin1');
const ERRNO_LINE = Buffer.from('\nerrno=', 'latin1');
const PEER = Buffer.from('public_key=', 'latin1');
const NEXT_PEER = Buffer.from('\npublic_key=', 'latin1');

/** Peers' keys repeat on every poll: converting each hex key once keeps a 1,000-peer read cheap. */
const keyCache = new Map<string, string>();
function cachedKey(hex: string): string {
  let k = keyCache.get(hex);
  if (k === undefined) {
    if (keyCache.size > 100_000) keyCache.clear();
    k = hexToKey(hex);
    keyCache.set(hex, k);
  }
  return k;
}

/**
 * The device's public key, derived from the private key a UAPI read includes (as wg(8) and
 * netlink report it): the stream transport authenticates a node by it. Kept: the derived key and
 * a digest of the private key's text (to see it change), never the private key itself.
 */
let ownKey: { digest: string; publicKey: string } | undefined;
function ownPublicKey(hex: string): string | undefined {
  const digest = createHash('sha256').update(hex).digest('hex');
  if (ownKey?.digest !== digest) {
    try {
      ownKey = { digest, publicKey: publicKeyOf(hexToKey(hex)) };
    } catch {
      return undefined;
    }
  }
  return ownKey.publicKey;
}

/**
 * The last bytes and state of each peer, by its hex key. Nothing mutates a PeerState once parsed,
 * so one may be shared by reads. The bytes are a copy: a slice would keep the whole response alive.
 */
const peerBlocks = new Map<string, { block: Buffer; peer: PeerState }>();

export function parseGet(text: string): DeviceState {
  return parseGetBytes(Buffer.from(text, 'latin1'));
}

/**
 * A get response, read as bytes. At 1,000 peers a response is 340 KB and the hub reads it up to
 * 4 times a second: decoding it to one string cost about as much as parsing it (0.6 ms), so only
 * the header and the peers whose lines changed since the last read are decoded. An idle peer's
 * block is the same bytes read after read (wireguard-go lists peers in a different order each
 * time, so blocks are matched by key, not by position).
 */
export function parseGetBytes(buf: Buffer): DeviceState {
  const device: DeviceState = { listenPort: 0, fwmark: 0, peers: [] };
  let pos = buf.subarray(0, PEER.length).equals(PEER) ? 0 : buf.indexOf(NEXT_PEER);
  if (pos > 0) pos += 1;
  parseHeader(buf.toString('latin1', 0, pos < 0 ? buf.length : pos), device);
  while (pos >= 0) {
    // A peer's lines run to the next peer's or the errno line.
    const next = buf.indexOf(NEXT_PEER, pos + PEER.length);
    let end = next;
    if (end < 0) end = buf.indexOf(ERRNO_LINE, pos);
    if (end < 0) end = buf.length;
    let keyEnd = buf.indexOf(0x0a, pos);
    if (keyEnd < 0 || keyEnd > end) keyEnd = end;
    const hex = buf.toString('latin1', pos + PEER.length, keyEnd);
    const seen = peerBlocks.get(hex);
    if (seen && seen.block.length === end - pos && buf.compare(seen.block, 0, seen.block.length, pos, end) === 0) {
      device.peers.push(seen.peer);
    } else {
      const peer = parsePeer(hex, buf.toString('latin1', keyEnd, end));
      if (peerBlocks.size > 100_000) peerBlocks.clear();
      peerBlocks.set(hex, { block: Buffer.from(buf.subarray(pos, end)), peer });
      device.peers.push(peer);
    }
    pos = next < 0 ? -1 : next + 1;
  }
  return device;
}

/** Calls back with each `key=value` line; a line without "=" is skipped. */
function eachLine(text: string, line: (key: string, value: string) => void): void {
  // The next "=" is found once and kept until the lines pass it: searching from every line's start
  // rescanned the rest of the text for each line without one (quadratic; 128 KB took 39 ms).
  let eq = text.indexOf('=');
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    if (eq >= 0 && eq < start) eq = text.indexOf('=', start);
    if (eq < 0) return;
    if (eq < end) line(text.slice(start, eq), text.slice(eq + 1, end));
    start = end + 1;
  }
}

function parseHeader(text: string, device: DeviceState): void {
  eachLine(text, (key, value) => {
    if (key === 'private_key') device.publicKey = ownPublicKey(value);
    else if (key === 'listen_port') device.listenPort = Number(value);
    else if (key === 'fwmark') device.fwmark = Number(value);
  });
}

function parsePeer(hex: string, lines: string): PeerState {
  const peer: PeerState = { publicKey: cachedKey(hex), allowedIps: [], persistentKeepalive: 0, lastHandshakeMs: 0, rxBytes: 0, txBytes: 0 };
  eachLine(lines, (key, value) => {
    switch (key) {
      case 'endpoint':
        // Interned by Endpoint.parse: a poll re-reads the same strings, parsing each once.
        peer.endpoint = Endpoint.tryParse(value);
        break;
      case 'allowed_ip':
        peer.allowedIps.push(value);
        break;
      case 'persistent_keepalive_interval':
        peer.persistentKeepalive = Number(value);
        break;
      case 'last_handshake_time_sec':
        peer.lastHandshakeMs += Number(value) * 1000;
        break;
      case 'last_handshake_time_nsec':
        peer.lastHandshakeMs += Math.floor(Number(value) / 1e6);
        break;
      case 'rx_bytes':
        peer.rxBytes = Number(value);
        break;
      case 'tx_bytes':
        peer.txBytes = Number(value);
        break;
    }
  });
  return peer;
}

export async function getDevice(ifname: string): Promise<DeviceState> {
  const text = await uapiRequest(ifname, 'get=1\n\n');
  const errno = errnoOf(text);
  if (errno !== 0) throw new UapiError(`${ifname}: UAPI get failed (errno ${errno})`);
  return parseGet(text);
}

export interface PeerUpdate {
  publicKey: string;
  remove?: boolean;
  endpoint?: Endpoint;
  persistentKeepalive?: number;
  /** Replaces the peer's allowed IPs when given. */
  allowedIps?: string[];
}

export interface DeviceUpdate {
  privateKey?: string;
  listenPort?: number;
  peers?: PeerUpdate[];
}

/**
 * A second line of defence behind the protocol's schemas: UAPI is one `key=value` per line, so a
 * value with a line break would be a command of its own ("...\nprivate_key=..."), and "=" has no
 * place in any value we write. Keys are checked as keys: Buffer's base64 decoder skips what it
 * does not know, so a mangled key would otherwise become some other key without a word.
 */
function value(key: string, v: string): string {
  if (/[\n\r=]/.test(v)) throw new UapiError(`${key} ${JSON.stringify(v)} cannot be sent to WireGuard: it contains a line break or "="`);
  return v;
}

function hexKey(key: string, base64: string): string {
  if (!isKey(base64)) throw new UapiError(`${key} ${JSON.stringify(base64)} is not a WireGuard key (44 characters of base64)`);
  return keyToHex(base64);
}

function integer(key: string, n: number, max: number): number {
  if (!Number.isInteger(n) || n < 0 || n > max) throw new UapiError(`${key} ${n} must be a whole number from 0 to ${max}`);
  return n;
}

export function formatSet(update: DeviceUpdate): string {
  let out = 'set=1\n';
  if (update.privateKey !== undefined) out += `private_key=${hexKey('private key', update.privateKey)}\n`;
  if (update.listenPort !== undefined) out += `listen_port=${integer('listen_port', update.listenPort, 65535)}\n`;
  for (const p of update.peers ?? []) {
    out += `public_key=${hexKey('public key', p.publicKey)}\n`;
    if (p.remove) {
      out += 'remove=true\n';
      continue;
    }
    if (p.endpoint !== undefined) out += `endpoint=${value('endpoint', p.endpoint.toString())}\n`;
    if (p.persistentKeepalive !== undefined) out += `persistent_keepalive_interval=${integer('persistent_keepalive_interval', p.persistentKeepalive, 65535)}\n`;
    if (p.allowedIps !== undefined) {
      out += 'replace_allowed_ips=true\n';
      for (const ip of p.allowedIps) out += `allowed_ip=${value('allowed_ip', ip)}\n`;
    }
  }
  return out + '\n';
}

export async function setDevice(ifname: string, update: DeviceUpdate): Promise<void> {
  const text = await uapiRequest(ifname, formatSet(update));
  const errno = errnoOf(text);
  if (errno !== 0) throw new UapiError(`${ifname}: UAPI set failed (errno ${errno})`);
}
