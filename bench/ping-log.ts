import { spawn } from 'node:child_process';
import { nsArgv } from '../src/core/exec.js';
import type { Lab } from '../src/lab/lab.js';

/**
 * A ping every 100 ms from a lab host, with the time of every reply (ping -D): a gap in the
 * replies is how long a path was down. Stopped by its own pid.
 */
export function startPing(lab: Lab, host: string, target: string): { stop(): Promise<number[]> } {
  const argv = nsArgv(lab.ns(host), 'ping', ['-D', '-n', '-i', '0.1', target]);
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const closed = new Promise<void>((r) => child.on('close', () => r()));
  return {
    async stop() {
      // `ip netns exec` execs ping: this pid is ping's.
      child.kill('SIGINT');
      await closed;
      return [...out.matchAll(/^\[(\d+\.\d+)\] .*bytes from/gm)].map((m) => Math.round(Number(m[1]) * 1000));
    },
  };
}
