import { lstatSync } from 'node:fs';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { Lab, teardownOnExit } from '../../src/lab/lab.js';
import { parseTopology, type TopologyInput } from '../../src/lab/topology.js';

teardownOnExit();

let counter = 0;

/** A lab name unique to this test process, so concurrent runs never collide. */
export function uniqueLabName(stem: string): string {
  return `${stem}${process.pid % 10000}${counter++}`.slice(0, 12);
}

/** A WireGuard interface name unique to this test process (wireguard-go sockets are machine-wide). */
export function uniqueIfname(stem: string): string {
  return `${stem}${process.pid % 100000}`.slice(0, 15);
}

/** Brings a lab up for the duration of `fn` and always tears it down, also when `fn` throws. */
export async function withLab<T>(topology: TopologyInput, fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = await Lab.up(parseTopology(topology));
  try {
    return await fn(lab);
  } catch (err) {
    // WGP2P_KEEP_LOGS=DIR keeps a failed lab's logs (hub, agents, wireguard-go) for a post-mortem.
    const keep = process.env.WGP2P_KEEP_LOGS;
    const plain = (src: string) => {
      const st = lstatSync(src, { throwIfNoEntry: false });
      return st !== undefined && (st.isFile() || st.isDirectory()); // not the hub's socket
    };
    if (keep) await cp(lab.logDir, join(keep, lab.name), { recursive: true, filter: plain }).catch(() => undefined);
    throw err;
  } finally {
    await lab.down();
  }
}
