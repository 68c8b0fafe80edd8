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

export function findTool(name: string, searchPath = `${process.env.PATH ?? ''}${delimiter}/usr/sbin:/sbin:/usr/bin:/bin`): string | undefined {
  const dirs = searchPath.split(delimiter).filter(Boolean);
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
export function preflight(tools: readonly string[], opts: { searchPath?: string; uid?: number } = {}): void {
  const uid = opts.uid ?? process.getuid?.();
  if (uid !== undefined && uid !== 0) {
    throw new PreflightError('the lab creates network namespaces and must run as root (try: sudo wgp2p …)');
  }
  const missing = tools.filter((t) => !findTool(t, opts.searchPath));
  if (missing.length) {
    const pkgs = [...new Set(missing.map((t) => TOOL_PACKAGES[t] ?? t))];
    throw new PreflightError(`missing system tools: ${missing.join(', ')}; install them with: apt-get install -y ${pkgs.join(' ')}`);
  }
}
