import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../core/exec.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Named namespaces and the processes in one are read from /run/netns and /proc here, as `ip netns
 * list` and `ip netns pids` read them, not by starting ip: a lab's teardown asked for the pids of
 * each namespace at least once and every 50 ms while processes were going, and in a TCG guest each
 * ip start took 1.5 s (107 ip starts, 157 s, in one mesh test).
 */
const NETNS_DIR = '/run/netns';

export async function listNamespaces(): Promise<string[]> {
  return (await readdir(NETNS_DIR).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
}

export function namespaceExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

export async function addNamespace(name: string): Promise<void> {
  await run('ip', ['netns', 'add', name]);
  // Loopback is needed by anything that binds 127.0.0.1 inside. Whether IPv6 runs is decided per node (Lab.ipv6Stack).
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
}

/** Processes whose network namespace is the named one: the same device and inode, as ip(8) compares them. */
export async function pidsIn(name: string): Promise<number[]> {
  const target = await stat(join(NETNS_DIR, name)).catch(() => undefined);
  if (!target) return [];
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((d) => /^\d+$/.test(d));
  const inNs = await Promise.all(
    pids.map(async (p) => {
      // A process that exits meanwhile, or one we may not look at, is not in it.
      const st = await stat(`/proc/${p}/ns/net`).catch(() => undefined);
      return st !== undefined && st.ino === target.ino && st.dev === target.dev;
    }),
  );
  return pids.filter((_, i) => inNs[i]).map(Number);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/** Stops every process inside a namespace: SIGTERM first so daemons remove their sockets, then SIGKILL. */
export async function killAllIn(name: string, graceMs = 1500): Promise<void> {
  let pids = (await pidsIn(name)).filter((p) => p !== process.pid);
  if (pids.length === 0) return;
  pids.forEach((p) => signal(p, 'SIGTERM'));
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await sleep(50);
    pids = (await pidsIn(name)).filter((p) => p !== process.pid);
    if (pids.length === 0) return;
  }
  pids.forEach((p) => signal(p, 'SIGKILL'));
  await sleep(50);
}

export async function deleteNamespace(name: string): Promise<void> {
  if (!namespaceExists(name)) return;
  await killAllIn(name);
  await run('ip', ['netns', 'del', name], { allowFail: true });
}

/** Runs many `ip` commands in one process (`ip -batch`), inside a namespace. */
export async function ipBatch(netns: string, lines: readonly string[]): Promise<void> {
  if (lines.length === 0) return;
  await run('ip', ['-n', netns, '-batch', '-'], { input: lines.join('\n') + '\n' });
}

export async function sysctl(netns: string, settings: Record<string, string | number>): Promise<void> {
  const args = ['-q', '-w', ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)];
  await run('sysctl', args, { netns });
}
