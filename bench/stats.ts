import { readdirSync, readFileSync } from 'node:fs';

/** Shared by the benchmarks: figures are printed as one JSON document on stdout; progress goes to stderr. */

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Runs with their median and p95: a target on the median alone hid a 6.7 s join in 25 runs whose
 * median was 1.2 s. With fewer than 20 runs the p95 is the maximum (nearest rank).
 */
export function summary(xs: number[]): { runs: number[]; median: number; p95: number; min: number; max: number } {
  return { runs: xs, median: median(xs), p95: percentile(xs, 95), min: Math.min(...xs), max: Math.max(...xs) };
}

export function argNumber(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

export function progress(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** Resident memory of a process, MiB, from /proc. */
export function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  return Math.round((kb / 1024) * 10) / 10;
}

export function argString(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** The p-th percentile (0-100) by the nearest-rank method. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** CPU time a process has used so far (user + system), in seconds, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  const { user, system } = cpuSplit(pid);
  return user + system;
}

/** A process's user and system CPU seconds so far: a device read's cost is partly the kernel's (socket copies). */
export function cpuSplit(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), counted in clock ticks (USER_HZ, 100 on Linux).
  return { user: Number(f[11]) / 100, system: Number(f[12]) / 100 };
}

/** The first process whose argv matches, by scanning /proc (for daemons whose pid nobody kept). */
export function findProcess(match: (argv: string[]) => boolean): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').filter(Boolean);
      if (match(argv)) return Number(d);
    } catch {
      // The process ended while the list was read.
    }
  }
  return undefined;
}
