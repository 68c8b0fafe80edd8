import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { run } from '../core/exec.js';
import { openDevice, type WireGuardDevice } from '../core/wireguard/device.js';
import { generateKeyPair, publicKeyOf } from '../core/wireguard/keys.js';
import { getDevice, setDevice, uapiSocketPath, type DeviceState } from '../core/wireguard/uapi.js';
import { spawnDaemon } from './daemon.js';
import { wgQuickUserspace, type DataPlane } from './data-plane.js';
import { scaled } from './time-scale.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface WireGuardStart {
  privateKey?: string;
  listenPort?: number;
  /** Tunnel address with prefix, e.g. 10.99.0.2/24. */
  address?: string;
  logFile?: string;
  /** kernel: a kernel interface (`ip link add … type wireguard`) configured with wg(8); default userspace (wireguard-go). */
  dataPlane?: DataPlane;
}

export interface StartedWireGuard {
  ifname: string;
  publicKey: string;
  privateKey: string;
}

async function waitFor(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  timeoutMs = scaled(timeoutMs);
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Starts a WireGuard interface `ifname` inside a namespace (wireguard-go, or the kernel's) and configures key, port and address. */
export async function startWireGuard(netns: string, ifname: string, opts: WireGuardStart = {}): Promise<StartedWireGuard> {
  if (opts.dataPlane === 'kernel') return startKernelWireGuard(netns, ifname, opts);
  if (existsSync(uapiSocketPath(ifname))) {
    throw new Error(`WireGuard interface "${ifname}" already exists somewhere on this machine (${uapiSocketPath(ifname)}); interface names must be unique across labs`);
  }
  // -f: stay in the foreground, so the process is ours (detached) and not a grandchild we cannot see.
  spawnDaemon(netns, 'wireguard-go', ['-f', ifname], opts.logFile ?? '/dev/null', { LOG_LEVEL: 'error' });
  await waitFor(() => existsSync(uapiSocketPath(ifname)), 5000, `wireguard-go to create ${ifname}`);
  const privateKey = opts.privateKey ?? generateKeyPair().privateKey;
  await setDevice(ifname, { privateKey, listenPort: opts.listenPort });
  const lines = [`link set dev ${ifname} up`];
  if (opts.address) lines.unshift(`addr add ${opts.address} dev ${ifname}`);
  await run('ip', ['-n', netns, '-batch', '-'], { input: lines.join('\n') + '\n' });
  return { ifname, privateKey, publicKey: publicKeyOf(privateKey) };
}

/** A kernel interface: names are per namespace here, so no machine-wide check applies. */
async function startKernelWireGuard(netns: string, ifname: string, opts: WireGuardStart): Promise<StartedWireGuard> {
  await run('ip', ['-n', netns, 'link', 'add', 'dev', ifname, 'type', 'wireguard']);
  const privateKey = opts.privateKey ?? generateKeyPair().privateKey;
  await (await openDevice(ifname, { netns })).set({ privateKey, listenPort: opts.listenPort });
  const lines = [`link set dev ${ifname} up`];
  if (opts.address) lines.unshift(`addr add ${opts.address} dev ${ifname}`);
  await run('ip', ['-n', netns, '-batch', '-'], { input: lines.join('\n') + '\n' });
  return { ifname, privateKey, publicKey: publicKeyOf(privateKey) };
}

/**
 * Brings a host up from a wg-quick file (the interface is named after the file, as wg-quick does).
 * On the kernel data plane wg-quick may not fall back to wireguard-go.
 */
export async function wgQuickUp(netns: string, confPath: string, dataPlane: DataPlane = 'userspace'): Promise<string> {
  const r = await run('wg-quick', ['up', confPath], { netns, allowFail: true, env: { ...process.env, WG_QUICK_USERSPACE_IMPLEMENTATION: wgQuickUserspace(dataPlane) } });
  if (r.code !== 0) {
    const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`wg-quick up ${confPath} failed (exit ${r.code}): ${why}${dataPlane === 'kernel' && /Unknown device type|Operation not supported|\[#\] false /.test(r.stderr) ? "; on the kernel data plane this means the kernel could not create a WireGuard interface (is the module there? run the lab under \"wgp2p lab vm\")" : ''}`);
  }
  return basename(confPath).replace(/\.conf$/, '');
}

export async function removeWireGuardSockets(ifnames: readonly string[]): Promise<void> {
  await Promise.all(ifnames.map((i) => rm(uapiSocketPath(i), { force: true })));
}

/** Pins every thread of the processes named `comm` in a namespace to one core. */
export async function pinProcesses(netns: string, comm: string, cpu: number): Promise<number> {
  const pids = (await run('ip', ['netns', 'pids', netns])).stdout.split(/\s+/).filter(Boolean);
  let n = 0;
  for (const pid of pids) {
    const name = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
    if (name.trim() !== comm) continue;
    await run('taskset', ['-a', '-p', '-c', String(cpu), pid]);
    n++;
  }
  return n;
}

export function readDevice(ifname: string): Promise<DeviceState> {
  return getDevice(ifname);
}

/**
 * Waits until the peer's last handshake is newer than `after` (ms since epoch); returns that
 * handshake time. `device`: an interface name (wireguard-go's UAPI socket) or an opened device.
 */
export async function waitForHandshake(device: string | WireGuardDevice, peerPublicKey: string, timeoutMs = 10_000, after = 0): Promise<number> {
  let seen = 0;
  const ifname = typeof device === 'string' ? device : device.ifname;
  await waitFor(
    async () => {
      const dev = typeof device === 'string' ? await getDevice(device) : await device.get();
      seen = dev.peers.find((p) => p.publicKey === peerPublicKey)?.lastHandshakeMs ?? 0;
      return seen > after;
    },
    timeoutMs,
    `a handshake on ${ifname} with ${peerPublicKey.slice(0, 8)}…`,
  );
  return seen;
}

/**
 * Milliseconds from `since` (default now) until `target` first answers a ping from inside `netns`.
 * ping sends every 10 ms until the first reply (-c 1 counts replies, -w is the deadline), so the
 * resolution is ~10 ms. A send error also counts toward -c and ends ping early: the kernel's
 * WireGuard refuses a packet for an address no peer has yet (ENOKEY), where wireguard-go drops it
 * silently, and an interface still coming up has no route. So ping again until the deadline.
 */
export async function msUntilPingReply(netns: string, target: string, timeoutMs = 15_000, since = performance.now()): Promise<number> {
  timeoutMs = scaled(timeoutMs);
  let said = '';
  for (;;) {
    const left = since + timeoutMs - performance.now();
    if (left <= 0) throw new Error(`no ping reply from ${target} within ${timeoutMs} ms (from ${netns})${said ? `; ping's last words: ${said}` : ''}`);
    const r = await run('ping', ['-n', '-q', '-i', '0.01', '-c', '1', '-w', String(Math.ceil(left / 1000)), target], { netns, allowFail: true });
    if (r.code === 0) return Math.round(performance.now() - since);
    said = r.stderr.trim().split('\n').pop() ?? '';
    await sleep(10);
  }
}

export interface IperfResult {
  bitsPerSecond: number;
  seconds: number;
}

/**
 * Runs iperf3 (TCP) from `clientNs` to a server started in `serverNs` listening on `serverAddress`;
 * with `cpus`, each end is pinned to a core (taskset), so that runs compare like with like.
 */
export async function iperf3(serverNs: string, clientNs: string, serverAddress: string, seconds = 5, cpus?: { client: number; server: number }): Promise<IperfResult> {
  const pin = (cpu: number | undefined, argv: string[]): [string, string[]] => (cpu === undefined ? [argv[0], argv.slice(1)] : ['taskset', ['-c', String(cpu), ...argv]]);
  const server = spawnDaemon(serverNs, ...pin(cpus?.server, ['iperf3', '-s', '-1', '-B', serverAddress]), '/dev/null');
  try {
    // Until the server listens (under TCG that took seconds; a client before it is refused).
    await waitFor(async () => (await run('ss', ['-Hltn', 'src', serverAddress, 'sport', '=', ':5201'], { netns: serverNs, allowFail: true })).stdout.trim() !== '', 5000, 'iperf3 -s to listen');
    const [cmd, args] = pin(cpus?.client, ['iperf3', '-c', serverAddress, '-t', String(seconds), '-J']);
    const r = await run(cmd, args, { netns: clientNs, timeoutMs: seconds * 1000 + scaled(10_000) });
    const json = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number; seconds: number } } };
    return { bitsPerSecond: json.end.sum_received.bits_per_second, seconds: json.end.sum_received.seconds };
  } finally {
    try {
      process.kill(server, 'SIGKILL');
    } catch {
      /* -1 makes it exit after one test */
    }
  }
}
