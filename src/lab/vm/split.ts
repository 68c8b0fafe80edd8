import { basename } from 'node:path';
import { median } from './scale.js';

/**
 * Splitting one `node --test … FILES` into groups, one per guest, and merging what the groups
 * report into one summary. Pure: `lab vm --parallel` (parallel.ts) does the booting.
 */

/**
 * Seconds each test:kernel file took in a TCG guest ALONE on this 2-core machine (kvm2/kvm3
 * sessions, docs/kernel-guest.md), used only to balance the groups: a file not listed weighs
 * the median of the listed ones. A wrong figure costs wall time, never a result.
 */
export const GUEST_SECONDS: Readonly<Record<string, number>> = {
  'mesh.test.js': 738,
  'mesh-hub-failure.test.js': 519,
  'truth-table.test.js': 508,
  'p2p.test.js': 508,
  'join.test.js': 496,
  'relay-wireguard.test.js': 113,
  'netlink-device.test.js': 18,
};

export interface TestSplit {
  /** argv before the files (node, --test, its options), the same for every group. */
  head: string[];
  /** Each group's files, in the order they were given. */
  groups: string[][];
}

const isTestFile = (a: string) => !a.startsWith('-') && /\.(c|m)?js$/.test(a);

/**
 * `argv` must be `node --test [options] FILE…` with the files last (options as --name=value).
 * Largest file first into the lightest group (LPT): with the files of test:kernel the two groups
 * are within 10 % of each other.
 */
export function splitTestArgv(argv: readonly string[], n: number, weights: Readonly<Record<string, number>> = GUEST_SECONDS): TestSplit {
  if (basename(argv[0] ?? '') !== 'node' || !argv.includes('--test')) throw new Error(`--parallel splits the files of \`node --test … FILE…\`; got: ${argv.join(' ')}`);
  const first = argv.findIndex((a, i) => i > 0 && isTestFile(a));
  if (first < 0) throw new Error('--parallel needs the test files named on the command line (node --test … FILE…)');
  const head = argv.slice(0, first);
  const files = argv.slice(first);
  const stray = files.find((a) => !isTestFile(a));
  if (stray) throw new Error(`--parallel: put every option before the test files (found ${stray} after them)`);
  const known = Object.values(weights);
  const unknown = known.length ? median(known) : 1;
  const weightOf = (file: string) => weights[basename(file)] ?? unknown;
  const groups = Array.from({ length: Math.min(n, files.length) }, () => ({ files: [] as string[], load: 0 }));
  for (const f of [...files].sort((x, y) => weightOf(y) - weightOf(x))) {
    const g = groups.reduce((lightest, x) => (x.load < lightest.load ? x : lightest));
    g.files.push(f);
    g.load += weightOf(f);
  }
  return { head, groups: groups.map((g) => files.filter((f) => g.files.includes(f))) };
}

export const SUMMARY_FIELDS = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo', 'duration_ms'] as const;
export type Summary = Record<(typeof SUMMARY_FIELDS)[number], number>;

/**
 * The closing counts node's test runner prints: `# tests 3` (TAP) or `ℹ tests 3` (spec, on a
 * terminal), possibly coloured. The last of each wins (the closing block comes last).
 */
export function parseSummary(output: string): Summary | undefined {
  const found: Partial<Summary> = {};
  // eslint-disable-next-line no-control-regex
  for (const line of output.replace(/\x1b\[[0-9;]*m/g, '').split(/\r?\n/)) {
    const m = /^(?:#|ℹ) (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) (\d+(?:\.\d+)?)\s*$/.exec(line);
    if (m) found[m[1] as keyof Summary] = Number(m[2]);
  }
  return found.tests === undefined ? undefined : (Object.fromEntries(SUMMARY_FIELDS.map((f) => [f, found[f] ?? 0])) as Summary);
}

/** Counts add up; the duration is the longest group's (they ran at the same time). */
export function mergeSummaries(parts: readonly Summary[]): Summary {
  const out = Object.fromEntries(SUMMARY_FIELDS.map((f) => [f, 0])) as Summary;
  for (const p of parts) for (const f of SUMMARY_FIELDS) out[f] = f === 'duration_ms' ? Math.max(out[f], p[f]) : out[f] + p[f];
  return out;
}

export function renderSummary(s: Summary): string {
  return SUMMARY_FIELDS.map((f) => `# ${f} ${f === 'duration_ms' ? s[f].toFixed(3) : s[f]}`).join('\n');
}

/** Complete lines of a stream, each with a prefix; the unfinished tail waits for the next chunk. */
export class LinePrefixer {
  private tail = '';
  constructor(
    private readonly prefix: string,
    private readonly out: (text: string) => void,
  ) {}

  push(text: string): void {
    const lines = (this.tail + text).split('\n');
    this.tail = lines.pop()!;
    if (lines.length) this.out(lines.map((l) => `${this.prefix}${l}\n`).join(''));
  }

  end(): void {
    if (this.tail) this.out(`${this.prefix}${this.tail}\n`);
    this.tail = '';
  }
}
