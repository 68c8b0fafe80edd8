import { basename } from 'node:path';

/**
 * Process starts of this process, counted when WGP2P_TRACE_EXEC is set: in a TCG guest a start
 * costs seconds (node: 1-12 s, the CLI 11-60 s), so where a slow test's time goes is mostly how
 * many processes it starts. One line per wgp2p CLI call as it ends, and a table per command at
 * exit, both on stderr. Off (the default) it costs one property read per start.
 */

interface Tally {
  count: number;
  ms: number;
}

const tallies = new Map<string, Tally>();
let hooked = false;

/** What a start is counted as: `wgp2p node list` for the CLI, else the program (inside `ip netns exec` too). */
export function startKey(argv: readonly string[]): string {
  let a = argv;
  if (a[0] === 'ip' && a[1] === 'netns' && a[2] === 'exec' && a.length > 4) a = a.slice(4);
  const prog = basename(a[0] ?? '?');
  if (prog === 'node' || a[0] === process.execPath) {
    const script = a[1] ?? '';
    if (/cli\/main\.js$/.test(script)) {
      const words = a.slice(2).filter((w, i, all) => !w.startsWith('-') && (i === 0 || !all[i - 1].startsWith('-'))).slice(0, 2);
      return `wgp2p ${words.join(' ')}`.trim();
    }
    return `node ${basename(script)}`;
  }
  return prog;
}

function summary(): string {
  const rows = [...tallies].sort((x, y) => y[1].ms - x[1].ms);
  const total = rows.reduce((s, [, t]) => ({ count: s.count + t.count, ms: s.ms + t.ms }), { count: 0, ms: 0 });
  return [`exec trace (pid ${process.pid}): ${total.count} process starts, ${(total.ms / 1000).toFixed(1)} s in all`, ...rows.map(([k, t]) => `  ${k}: ${t.count} x, ${(t.ms / 1000).toFixed(1)} s (mean ${Math.round(t.ms / t.count)} ms)`)].join('\n');
}

export function traceExec(argv: readonly string[], ms: number, env: NodeJS.ProcessEnv = process.env): void {
  if (!env.WGP2P_TRACE_EXEC) return;
  const key = startKey(argv);
  const t = tallies.get(key) ?? { count: 0, ms: 0 };
  t.count++;
  t.ms += ms;
  tallies.set(key, t);
  if (key.startsWith('wgp2p ')) process.stderr.write(`exec trace: ${key} took ${Math.round(ms)} ms\n`);
  if (!hooked) {
    hooked = true;
    process.once('exit', () => process.stderr.write(summary() + '\n'));
  }
}
