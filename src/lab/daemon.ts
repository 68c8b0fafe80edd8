import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { nsArgv } from '../core/exec.js';

/**
 * Starts a long-lived process inside a namespace, detached from our process group so that a lab
 * brought up by the CLI outlives the CLI. Teardown finds it again through `ip netns pids`.
 */
export function spawnDaemon(netns: string, cmd: string, args: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): number {
  const fd = openSync(logFile, 'a', 0o600);
  try {
    const argv = nsArgv(netns, cmd, args);
    const child = spawn(argv[0], argv.slice(1), {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...env },
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`cannot start ${cmd} in ${netns}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}
