import { existsSync } from 'node:fs';
import { run } from '../core/exec.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function listNamespaces(): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list'], { allowFail: true });
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n): n is string => Boolean(n));
}

export function namespaceExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

export async function addNamespace(name: string): Promise<void> {
  await run('ip', ['netns', 'add', name]);
  // Loopback is needed by anything that binds 127.0.0.1 inside. Whether IPv6 runs is decided per node (Lab.ipv6Stack).
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
}

export async function pidsIn(name: string): Promise<number[]> {
  const { stdout } = await run('ip', ['netns', 'pids', name], { allowFail: true });
  return stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
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
