import { existsSync } from 'node:fs';
import { run } from '../exec.js';
import { Endpoint } from '../net/endpoint.js';
import { getDevice, setDevice, uapiSocketPath, type DeviceState, type DeviceUpdate, type PeerState } from './uapi.js';

/**
 * The one way wgp2p reads and changes a WireGuard interface. Userspace implementations expose the
 * UAPI socket (one round trip, no process); the kernel module is driven through wg(8).
 */
export interface WireGuardDevice {
  readonly ifname: string;
  readonly kind: 'uapi' | 'wg-tool';
  get(): Promise<DeviceState>;
  set(update: DeviceUpdate): Promise<void>;
}

export class DeviceError extends Error {
  override name = 'DeviceError';
}

class UapiDevice implements WireGuardDevice {
  readonly kind = 'uapi';
  constructor(readonly ifname: string) {}
  get(): Promise<DeviceState> {
    return getDevice(this.ifname);
  }
  set(update: DeviceUpdate): Promise<void> {
    return setDevice(this.ifname, update);
  }
}

/** Parses `wg show IF dump` (tab-separated; first line is the interface). */
export function parseDump(text: string): DeviceState {
  const [head, ...rest] = text.trim().split('\n');
  const h = head.split('\t');
  const peers: PeerState[] = rest.filter(Boolean).map((line) => {
    const f = line.split('\t');
    return {
      publicKey: f[0],
      endpoint: f[2] === '(none)' ? undefined : Endpoint.tryParse(f[2]),
      allowedIps: f[3] === '(none)' ? [] : f[3].split(','),
      lastHandshakeMs: Number(f[4]) * 1000,
      rxBytes: Number(f[5]),
      txBytes: Number(f[6]),
      persistentKeepalive: f[7] === 'off' ? 0 : Number(f[7]),
    };
  });
  return { publicKey: h[1], listenPort: Number(h[2]), fwmark: h[3] === 'off' ? 0 : Number(h[3]), peers };
}

class WgToolDevice implements WireGuardDevice {
  readonly kind = 'wg-tool';
  constructor(readonly ifname: string) {}
  async get(): Promise<DeviceState> {
    return parseDump((await run('wg', ['show', this.ifname, 'dump'])).stdout);
  }
  async set(update: DeviceUpdate): Promise<void> {
    if (update.privateKey !== undefined) throw new DeviceError('setting the private key through wg(8) is not supported here; use the config file');
    const args = ['set', this.ifname];
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
    await run('wg', args);
  }
}

/** Finds the interface: its UAPI socket, else a kernel interface that wg(8) knows. */
export async function openDevice(ifname: string): Promise<WireGuardDevice> {
  if (!/^[A-Za-z0-9_=+.-]{1,15}$/.test(ifname)) throw new DeviceError(`"${ifname}" is not a valid interface name (1-15 characters)`);
  if (existsSync(uapiSocketPath(ifname))) return new UapiDevice(ifname);
  const r = await run('wg', ['show', ifname, 'public-key'], { allowFail: true }).catch(() => ({ code: 1 }));
  if (r.code === 0) return new WgToolDevice(ifname);
  throw new DeviceError(`WireGuard interface "${ifname}" does not exist; bring it up first (e.g. wg-quick up ${ifname})`);
}
