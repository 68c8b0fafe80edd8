/**
 * Deadlines of lab waits, stretched where the machine is known to be slow: in a TCG guest every
 * process runs 10-20x slower (node takes seconds to start), so a wait that is generous on the host
 * would fail there although nothing is wrong. Only deadlines scale, never what is waited for, and
 * never protocol timers: a test still finishes as soon as its condition holds.
 */
export function timeScale(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.WGP2P_LAB_TIME_SCALE ?? '1');
  return Number.isFinite(v) && v >= 1 && v <= 100 ? v : 1;
}

export function scaled(ms: number, env: NodeJS.ProcessEnv = process.env): number {
  return Math.round(ms * timeScale(env));
}
