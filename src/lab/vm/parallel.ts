import { bootGuest, prepareVm, type VmRunOptions } from './run.js';
import { LinePrefixer, mergeSummaries, parseSummary, renderSummary, splitTestArgv, type Summary } from './split.js';
import type { Accel } from './qemu-args.js';

export interface ParallelResult {
  /** The first non-zero exit of a group, else 0. */
  code: number;
  accel: Accel;
  groups: { files: string[]; code: number; bootMs: number; runMs: number; summary?: Summary }[];
  summary?: Summary;
}

/**
 * `node --test … FILES` split over `n` guests booted at once: under TCG with thread=single each
 * guest keeps one host core busy, so on a 2-core machine two guests take about half the wall
 * time of one. Each guest measures its own time scale at boot (it sees the other's load). Their
 * output streams back prefixed `[1] `, `[2] `; at the end one summary with the counts of all.
 * Every guest is torn down when its command ends, on a failure and on Ctrl-C (bootGuest's own
 * handling); a guest that fails to boot or times out does not stop the others, and its error is
 * thrown once they are done.
 */
export async function runInVmParallel(o: VmRunOptions, n: number): Promise<ParallelResult> {
  const split = splitTestArgv(o.argv, n);
  const log = o.log ?? (() => undefined);
  const prepared = await prepareVm(o);
  const out = o.stdout ?? ((t: string) => void process.stdout.write(t));
  const err = (t: string) => void process.stderr.write(t);
  split.groups.forEach((files, i) => log(`guest ${i + 1} of ${split.groups.length}: ${files.join(' ')}`));
  const settled = await Promise.allSettled(
    split.groups.map(async (files, i) => {
      const tag = `[${i + 1}] `;
      const so = new LinePrefixer(tag, out);
      const se = new LinePrefixer(tag, err);
      let text = '';
      try {
        const r = await bootGuest(
          prepared,
          {
            ...o,
            argv: [...split.head, ...files],
            log: (m) => log(`${tag}${m}`),
            stdout: (t) => {
              text = (text + t).slice(-65536);
              so.push(t);
            },
            stderr: (b) => se.push(b.toString('utf8')),
          },
          `last-console-${i + 1}.log`,
        );
        return { files, code: r.code, bootMs: r.bootMs, runMs: r.runMs, summary: parseSummary(text) };
      } finally {
        so.end();
        se.end();
      }
    }),
  );
  const groups = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  const summaries = groups.flatMap((g) => (g.summary ? [g.summary] : []));
  const summary = summaries.length ? mergeSummaries(summaries) : undefined;
  groups.forEach((g) => log(`guest ${split.groups.indexOf(g.files) + 1}: exited ${g.code} after ${(g.runMs / 1000).toFixed(1)} s (boot ${(g.bootMs / 1000).toFixed(1)} s)${g.summary ? `, ${g.summary.pass}/${g.summary.tests} pass, ${g.summary.fail} fail` : ', no test summary'}`));
  if (summary) out(`# lab vm --parallel ${split.groups.length}: the guests' summaries added up\n${renderSummary(summary)}\n`);
  if (failed) throw failed.reason;
  return { code: groups.find((g) => g.code !== 0)?.code ?? 0, accel: prepared.decision.accel, groups, summary };
}
