/**
 * The lab's time scale for a guest, from how much slower a process start is there than on the
 * host. Under TCG that ratio moves with the host's load (25-75x for `node -e 0` on a shared
 * 2-core runner), so a fixed scale is either too short on a loaded runner (waits run out while
 * nothing is wrong) or needlessly long on a quiet one (a real failure takes ages to report).
 */

/** Wall times of the same process starts, in ms. */
export interface StartTimes {
  /** `node -e 0`: the runtime alone. */
  nodeMs: number;
  /** `wgp2p hub --help`: the runtime plus loading the CLI's modules (most of a lab's process starts). */
  cliMs: number;
}

/**
 * Load changes during a run: the probe sees one moment of it. 1.5x headroom over the slowest
 * ratio measured so far (75x against a 50x probe) covers that without hiding a real hang.
 */
export const SCALE_HEADROOM = 1.5;
/** time-scale.ts refuses anything outside 1-100. */
export const MAX_SCALE = 100;

export interface Scales {
  /** For deadlines (WGP2P_LAB_TIME_SCALE): the larger of the two slowdowns, since most lab waits include process starts. */
  deadline: number;
  /** For windows (WGP2P_LAB_WINDOW_SCALE, time-scale.ts): the runtime's slowdown alone, never above `deadline`. */
  window: number;
}

/** Both scales, with headroom, rounded up, within 1-100. Undefined when a figure is unusable. */
export function scalesFromStartTimes(host: StartTimes, guest: StartTimes): Scales | undefined {
  const ok = (t: StartTimes) => [t.nodeMs, t.cliMs].every((v) => Number.isFinite(v) && v > 0);
  if (!ok(host) || !ok(guest)) return undefined;
  const of = (ratio: number) => Math.min(MAX_SCALE, Math.max(1, Math.ceil(ratio * SCALE_HEADROOM)));
  const deadline = of(Math.max(guest.nodeMs / host.nodeMs, guest.cliMs / host.cliMs));
  return { deadline, window: Math.min(deadline, of(guest.nodeMs / host.nodeMs)) };
}

/** The figures travel to the guest as environment variables (digits only). */
export const HOST_NODE_MS = 'WGP2P_VM_HOST_NODE_MS';
export const HOST_CLI_MS = 'WGP2P_VM_HOST_CLI_MS';

export function startTimesFromEnv(env: NodeJS.ProcessEnv): StartTimes | undefined {
  const n = Number(env[HOST_NODE_MS]);
  const c = Number(env[HOST_CLI_MS]);
  return Number.isFinite(n) && n > 0 && Number.isFinite(c) && c > 0 ? { nodeMs: n, cliMs: c } : undefined;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
