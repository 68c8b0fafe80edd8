import { createConnection } from 'node:net';
import { Endpoint } from '../net/endpoint.js';
import { hexToKey, isKey, keyToHex } from './keys.js';

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

/** The errno line of a UAPI response (0 is success), -1 if it has none. */
export function errnoOf(text: string): number {
  const m = /(?:^|\n)errno=(-?\d+)\n/.exec(text);
  return m ? Number(m[1]) : -1;
}

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

/** The last text and state of each peer, by its hex key. Nothing mutates a PeerState once parsed, so one may be shared by reads. */
const peerBlocks = new Map<string, { block: string; peer: PeerState }>();

export function parseGet(text: string): DeviceState {
  const device: DeviceState = { listenPort: 0, fwmark: 0, peers: [] };
  let peer: PeerState | undefined;
  // The next "=" is found once and kept until the lines pass it: searching from every line's start
  // rescanned the rest of the text for each line without one (quadratic; 800 KB took a second).
  let eq = -1;
  for (let start = 0, end = text.indexOf('\n'); end >= 0; start = end + 1, end = text.indexOf('\n', start)) {
    if (eq !== -2 && eq < start) eq = text.indexOf('=', start);
    if (eq === -1) eq = -2;
    if (eq < 0 || eq > end) continue;
    const key = text.slice(start, eq);
    const value = text.slice(eq + 1, end);
    switch (key) {
      case 'public_key': {
        // A peer's lines run to the next peer's or the errno line. An idle peer's are the same
        // text read after read: its parsed state is reused (a 1,000-peer read parsed in 2.5 ms).
        let blockEnd = text.indexOf('\npublic_key=', end);
        if (blockEnd < 0) blockEnd = text.indexOf('\nerrno=', end);
        if (blockEnd < 0) blockEnd = text.length;
        const block = text.slice(start, blockEnd);
        const seen = peerBlocks.get(value);
        if (seen && seen.block === block) {
          device.peers.push(seen.peer);
          peer = undefined;
          end = blockEnd;
          break;
        }
        peer = { publicKey: cachedKey(value), allowedIps: [], persistentKeepalive: 0, lastHandshakeMs: 0, rxBytes: 0, txBytes: 0 };
        if (peerBlocks.size > 100_000) peerBlocks.clear();
        peerBlocks.set(value, { block, peer });
        device.peers.push(peer);
        break;
      }
      case 'listen_port':
        device.listenPort = Number(value);
        break;
      case 'fwmark':
        device.fwmark = Number(value);
        break;
      case 'endpoint':
        // Interned by Endpoint.parse: a poll re-reads the same strings, parsing each once.
        if (peer) peer.endpoint = Endpoint.tryParse(value);
        break;
      case 'allowed_ip':
        peer?.allowedIps.push(value);
        break;
      case 'persistent_keepalive_interval':
        if (peer) peer.persistentKeepalive = Number(value);
        break;
      case 'last_handshake_time_sec':
        if (peer) peer.lastHandshakeMs += Number(value) * 1000;
        break;
      case 'last_handshake_time_nsec':
        if (peer) peer.lastHandshakeMs += Math.floor(Number(value) / 1e6);
        break;
      case 'rx_bytes':
        if (peer) peer.rxBytes = Number(value);
        break;
      case 'tx_bytes':
        if (peer) peer.txBytes = Number(value);
        break;
    }
  }
  return device;
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
