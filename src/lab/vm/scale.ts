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
  /**
   * A fixed JavaScript loop in an already running process (cpuLoopMs()): what a running probe,
   * agent or hub pays. Under TCG a fresh process is slower again (its code is translated anew),
   * so node -e 0 overstates this: 38x against 16x for a loop, measured on a loaded runner.
   */
  loopMs: number;
}

/**
 * The loop timed on both sides: the fastest of a few runs, each ~30 ms of CPU on this host.
 * CPU time, not wall time: on a host where other work holds both cores (or `lab vm` runs under
 * nice) the wall time of 30 ms of work was 139 ms, which made the guest look only 1.1x slower
 * and shrank its windows to 2x (the truth table's NAT windows need about 5x under TCG). In the
 * guest the two are the same: its clock runs on while QEMU waits for a host core, so the
 * guest's own CPU time still carries every stall of the emulation.
 */
export function cpuLoopMs(runs = 3): number {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = process.cpuUsage();
    let x = 0;
    for (let i = 0; i < 20_000_000; i++) x = (x * 31 + i) | 0;
    if (x === 0.5) throw new Error('unreachable: keeps the loop from being optimised away');
    const d = process.cpuUsage(t0);
    best = Math.min(best, (d.user + d.system) / 1000);
  }
  return best;
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
  /** For windows (WGP2P_LAB_WINDOW_SCALE, time-scale.ts): a running process's slowdown, never above `deadline`. */
  window: number;
}

/** Both scales, with headroom, rounded up, within 1-100. Undefined when a figure is unusable. */
export function scalesFromStartTimes(host: StartTimes, guest: StartTimes): Scales | undefined {
  const ok = (t: StartTimes) => [t.nodeMs, t.cliMs, t.loopMs].every((v) => Number.isFinite(v) && v > 0);
  if (!ok(host) || !ok(guest)) return undefined;
  const of = (ratio: number) => Math.min(MAX_SCALE, Math.max(1, Math.ceil(ratio * SCALE_HEADROOM)));
  const deadline = of(Math.max(guest.nodeMs / host.nodeMs, guest.cliMs / host.cliMs, guest.loopMs / host.loopMs));
  return { deadline, window: Math.min(deadline, of(guest.loopMs / host.loopMs)) };
}

/** The figures travel to the guest as environment variables (digits only). */
export const HOST_NODE_MS = 'WGP2P_VM_HOST_NODE_MS';
export const HOST_CLI_MS = 'WGP2P_VM_HOST_CLI_MS';
export const HOST_LOOP_MS = 'WGP2P_VM_HOST_LOOP_MS';

export function startTimesFromEnv(env: NodeJS.ProcessEnv): StartTimes | undefined {
  const [n, c, l] = [HOST_NODE_MS, HOST_CLI_MS, HOST_LOOP_MS].map((k) => Number(env[k]));
  return [n, c, l].every((v) => Number.isFinite(v) && v > 0) ? { nodeMs: n, cliMs: c, loopMs: l } : undefined;
}

export function startTimesToEnv(t: StartTimes): Record<string, string> {
  // Whole ms, at least 1: the guest reads digits.
  const ms = (v: number) => String(Math.max(1, Math.round(v)));
  return { [HOST_NODE_MS]: ms(t.nodeMs), [HOST_CLI_MS]: ms(t.cliMs), [HOST_LOOP_MS]: ms(t.loopMs) };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
