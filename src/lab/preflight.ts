import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Which Debian package provides each tool the lab runs. */
export const TOOL_PACKAGES: Record<string, string> = {
  ip: 'iproute2',
  nft: 'nftables',
  sysctl: 'procps',
  conntrack: 'conntrack',
  wg: 'wireguard-tools',
  'wg-quick': 'wireguard-tools',
  'wireguard-go': 'wireguard-go',
  miniupnpd: 'miniupnpd-nftables',
  upnpc: 'miniupnpc',
  natpmpc: 'natpmpc',
  iperf3: 'iperf3',
  ping: 'iputils-ping',
};

export function findTool(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  for (const dir of dirs) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export class PreflightError extends Error {
  override name = 'PreflightError';
}

/** Fails before anything is created if we are not root or a tool is missing, naming the packages to install. */
export function preflight(tools: readonly string[]): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new PreflightError('the lab creates network namespaces and must run as root (try: sudo wgp2p …)');
  }
  const missing = tools.filter((t) => !findTool(t));
  if (missing.length) {
    const pkgs = [...new Set(missing.map((t) => TOOL_PACKAGES[t] ?? t))];
    throw new PreflightError(`missing system tools: ${missing.join(', ')}; install them with: apt-get install -y ${pkgs.join(' ')}`);
  }
}
