import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpuLoopMs, type StartTimes } from './scale.js';

/** This checkout's CLI (dist/src/lab/vm/ -> dist/src/cli/main.js). */
export const CLI_MAIN = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

/** Wall time of one process from spawn to exit; a failure to start or a non-zero exit is an error. */
function timeOne(cmd: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn(cmd, args, { stdio: 'ignore' });
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}`))));
  });
}

/**
 * The fastest of `runs` starts of `node -e 0` and of `wgp2p hub --help`, one at a time, and this
 * process's loop. The fastest, not the median: the host's figures are the baseline of what the
 * lab's deadlines were written for, and a start that waited for a core held by other work (the
 * shared runner, or a second guest already booting) would make the guest look faster than it is.
 * The guest times one run of each (a start there costs seconds).
 */
export async function measureStartTimes(runs = 1, node = process.execPath): Promise<StartTimes> {
  const nodes: number[] = [];
  const clis: number[] = [];
  for (let i = 0; i < runs; i++) {
    nodes.push(await timeOne(node, ['-e', '0']));
    clis.push(await timeOne(node, [CLI_MAIN, 'hub', '--help']));
  }
  return { nodeMs: Math.round(Math.min(...nodes)), cliMs: Math.round(Math.min(...clis)), loopMs: cpuLoopMs() };
}
