import { existsSync } from 'node:fs';
import { run } from '../exec.js';
import { Endpoint } from '../net/endpoint.js';
import { isKey } from './keys.js';
import { NetlinkDevice } from './netlink-device.js';
import { netlinkUnavailable } from '../netlink/transport.js';
import { errnoOf, formatSet, parseGetBytes, UapiError, uapiSocketPath, type DeviceState, type DeviceUpdate, type PeerState } from './uapi.js';
import { UapiConnection } from './uapi-connection.js';

/**
 * The one way wgp2p reads and changes a WireGuard interface. Userspace implementations expose the
 * UAPI socket (one round trip, no process); the kernel module is read over generic netlink (one
 * round trip on a long-lived socket, no process), or through wg(8) where netlink sockets are not
 * available to Node (the optional `netlink` package is missing).
 */
export interface WireGuardDevice {
  readonly ifname: string;
  readonly kind: 'uapi' | 'netlink' | 'wg-tool';
  get(): Promise<DeviceState>;
  set(update: DeviceUpdate): Promise<void>;
}

export class DeviceError extends Error {
  override name = 'DeviceError';
}

/** Userspace WireGuard over one kept UAPI connection (see uapi-connection.ts for why it is kept). */
class UapiDevice implements WireGuardDevice {
  readonly kind = 'uapi';
  private readonly conn: UapiConnection;
  constructor(readonly ifname: string) {
    this.conn = new UapiConnection(ifname);
  }
  async get(): Promise<DeviceState> {
    const response = await this.conn.requestBytes('get=1\n\n');
    const errno = errnoOf(response);
    if (errno !== 0) throw new UapiError(`${this.ifname}: UAPI get failed (errno ${errno})`);
    return parseGetBytes(response);
  }
  async set(update: DeviceUpdate): Promise<void> {
    const text = await this.conn.request(formatSet(update));
    const errno = errnoOf(text);
    if (errno !== 0) throw new UapiError(`${this.ifname}: UAPI set failed (errno ${errno})`);
  }
}

const DUMP_PEER_FIELDS = 'public key, preshared key, endpoint, allowed ips, latest handshake, rx bytes, tx bytes, keepalive';
const COUNT = /^\d{1,20}$/;

/**
 * Parses `wg show IF dump` (tab-separated; first line is the interface, then one line per peer).
 * A line that is not what wg(8) prints is refused with a DeviceError naming it, never read as a
 * partial peer: half a reading would tell the hub a peer lost its endpoint or allowed IPs.
 */
export function parseDump(text: string): DeviceState {
  const fail = (line: number, message: string): never => {
    throw new DeviceError(`wg show dump line ${line}: ${message}; is this the output of "wg show IF dump" (one interface)?`);
  };
  const lines = text.trim().split('\n');
  const h = lines[0].split('\t');
  if (h.length !== 4) fail(1, `the interface line has ${h.length} tab-separated fields, expected 4 (private key, public key, listen port, fwmark)`);
  const listenPort = Number(h[2]);
  if (!COUNT.test(h[2]) || listenPort > 65535) fail(1, 'the listen port is not a number from 0 to 65535');
  const fwmark = h[3] === 'off' ? 0 : Number(h[3]);
  if (h[3] !== 'off' && (!/^(0x[0-9a-f]{1,8}|\d{1,10})$/i.test(h[3]) || fwmark > 0xffffffff)) fail(1, 'the fwmark is neither off nor a 32-bit number');
  const peers: PeerState[] = [];
  for (let i = 1; i < lines.length; i++) {
    if (lines[i] === '') continue;
    const f = lines[i].split('\t');
    const n = i + 1;
    if (f.length !== 8) fail(n, `a peer line has ${f.length} tab-separated fields, expected 8 (${DUMP_PEER_FIELDS})`);
    if (!isKey(f[0])) fail(n, 'the peer\'s public key is not a WireGuard key');
    for (const [at, what] of [[4, 'latest handshake'], [5, 'rx bytes'], [6, 'tx bytes']] as const) {
      if (!COUNT.test(f[at])) fail(n, `${what} is not a number`);
    }
    if (f[7] !== 'off' && !(COUNT.test(f[7]) && Number(f[7]) <= 65535)) fail(n, 'the keepalive is neither off nor seconds from 0 to 65535');
    peers.push({
      publicKey: f[0],
      endpoint: f[2] === '(none)' ? undefined : Endpoint.tryParse(f[2]),
      allowedIps: f[3] === '(none)' || f[3] === '' ? [] : f[3].split(','),
      lastHandshakeMs: Number(f[4]) * 1000,
      rxBytes: Number(f[5]),
      txBytes: Number(f[6]),
      persistentKeepalive: f[7] === 'off' ? 0 : Number(f[7]),
    });
  }
  return { publicKey: h[1], listenPort, fwmark, peers };
}

class WgToolDevice implements WireGuardDevice {
  readonly kind = 'wg-tool';
  /** `netns`: the namespace the interface lives in, for a caller outside it (the lab's tests). */
  constructor(
    readonly ifname: string,
    private readonly netns?: string,
  ) {}
  async get(): Promise<DeviceState> {
    return parseDump((await run('wg', ['show', this.ifname, 'dump'], { netns: this.netns })).stdout);
  }
  async set(update: DeviceUpdate): Promise<void> {
    const args = ['set', this.ifname];
    // The key never goes in argv (where ps would show it). wg(8) reads it from a file, and node's
    // stdin is a socket, which fopen("/dev/stdin") refuses (ENXIO, measured): bash reads it from
    // stdin and hands wg a pipe, as wg-quick does.
    if (update.privateKey !== undefined) args.push('private-key', '/dev/fd/3');
    if (update.listenPort !== undefined) args.push('listen-port', String(update.listenPort));
    for (const p of update.peers ?? []) {
      args.push('peer', p.publicKey);
      if (p.remove) {
        args.push('remove');
        continue;
      }
      if (p.endpoint !== undefined) args.push('endpoint', p.endpoint.toString());
      if (p.persistentKeepalive !== undefined) args.push('persistent-keepalive', String(p.persistentKeepalive));
      if (p.allowedIps !== undefined) args.push('allowed-ips', p.allowedIps.join(','));
    }
    if (update.privateKey === undefined) await run('wg', args, { netns: this.netns });
    else await run('bash', ['-c', 'IFS= read -r k; exec wg "$@" 3< <(printf "%s\\n" "$k")', 'wg', ...args], { netns: this.netns, input: `${update.privateKey}\n` });
  }
}

/**
 * Finds the interface: its UAPI socket, else a kernel interface over netlink, else one that wg(8)
 * knows. WGP2P_KERNEL_BACKEND=wg-tool keeps the kernel on wg(8) (to compare the two).
 *
 * `netns`: the namespace the interface lives in, for a caller outside it (the lab's tests read
 * every host's device from the root namespace). UAPI sockets are machine-wide, so they are found
 * as before. A kernel interface in another namespace is read with wg(8) under `ip netns exec`:
 * a netlink socket belongs to the namespace of the thread that opened it, Node cannot setns(2)
 * one of its threads, and the WireGuard family takes no target-namespace attribute (rtnetlink's
 * IFLA_TARGET_NETNSID has no genl counterpart). A process per read is what the lab's readers
 * (tests, not a hub polling every 20 ms) can afford; a hub or agent runs inside its namespace
 * and opens its netlink socket there.
 */
export async function openDevice(ifname: string, opts: { netns?: string } = {}): Promise<WireGuardDevice> {
  if (!/^[A-Za-z0-9_=+.-]{1,15}$/.test(ifname)) throw new DeviceError(`"${ifname}" is not a valid interface name (1-15 characters)`);
  if (existsSync(uapiSocketPath(ifname))) return new UapiDevice(ifname);
  if (opts.netns === undefined && process.env.WGP2P_KERNEL_BACKEND !== 'wg-tool' && netlinkUnavailable() === undefined) {
    const dev = await NetlinkDevice.open(ifname);
    if (typeof dev !== 'string') return dev;
    if (dev === 'no-device') throw new DeviceError(`WireGuard interface "${ifname}" does not exist; bring it up first (e.g. wg-quick up ${ifname})`);
    if (dev === 'not-wireguard') throw new DeviceError(`interface "${ifname}" exists but is not a WireGuard interface; name the WireGuard one (ip -br link show type wireguard)`);
    // 'no-module': no kernel WireGuard here; wg(8) may still find a userspace one under another UAPI directory.
  }
  const r = await run('wg', ['show', ifname, 'public-key'], { allowFail: true, netns: opts.netns }).catch(() => ({ code: 1 }));
  if (r.code === 0) return new WgToolDevice(ifname, opts.netns);
  throw new DeviceError(`WireGuard interface "${ifname}" does not exist; bring it up first (e.g. wg-quick up ${ifname})`);
}
