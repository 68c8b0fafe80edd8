import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { run } from '../core/exec.js';

/**
 * Which WireGuard carries a lab's tunnels: `userspace` is wireguard-go (the only one on machines
 * without the module, such as this project's CI host), `kernel` is Linux's module, which is what
 * Linux hubs and servers run. wg-quick tries the kernel first by itself; the difference is in
 * what the lab starts directly and in whether falling back to wireguard-go is allowed.
 */
export const DATA_PLANES = ['userspace', 'kernel'] as const;
export type DataPlane = (typeof DATA_PLANES)[number];

/** The data plane a topology gets when it does not name one: WGP2P_DATA_PLANE, else userspace. */
export function defaultDataPlane(env: NodeJS.ProcessEnv = process.env): DataPlane {
  const v = env.WGP2P_DATA_PLANE;
  if (v === undefined || v === '') return 'userspace';
  if ((DATA_PLANES as readonly string[]).includes(v)) return v as DataPlane;
  throw new Error(`WGP2P_DATA_PLANE must be ${DATA_PLANES.join(' or ')}, not "${v}"`);
}

/** Why this machine cannot run the kernel data plane, or undefined when its WireGuard module is loaded (or loads). */
export async function kernelWireGuardProblem(): Promise<string | undefined> {
  if (existsSync('/sys/module/wireguard')) return undefined;
  const r = await run('modprobe', ['wireguard'], { allowFail: true }).catch((e: Error) => ({ code: 1, stderr: e.message, stdout: '' }));
  if (r.code === 0 && existsSync('/sys/module/wireguard')) return undefined;
  const why = r.stderr.trim().split('\n')[0] || 'modprobe wireguard failed';
  return `this kernel (${release()}) has no WireGuard module (${why}); run the lab in a guest with Debian's kernel ("wgp2p lab vm -- COMMAND"), or use dataPlane: userspace (WGP2P_DATA_PLANE=userspace)`;
}

/**
 * wg-quick's userspace fallback for a data plane. On the kernel plane a missing module must fail
 * loudly instead of quietly measuring wireguard-go: `false` makes wg-quick's fallback fail.
 */
export function wgQuickUserspace(plane: DataPlane): string {
  return plane === 'kernel' ? 'false' : 'wireguard-go';
}
