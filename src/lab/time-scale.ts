/**
 * Deadlines of lab waits, stretched where the machine is known to be slow: in a TCG guest every
 * process runs 10-20x slower (node takes seconds to start), so a wait that is generous on the host
 * would fail there although nothing is wrong. Only deadlines scale, never what is waited for, and
 * never protocol timers: a test still finishes as soon as its condition holds.
 */
export function timeScale(env: NodeJS.ProcessEnv = process.env): number {
  return parseScale(env.WGP2P_LAB_TIME_SCALE) ?? 1;
}

export function scaled(ms: number, env: NodeJS.ProcessEnv = process.env): number {
  return Math.round(ms * timeScale(env));
}

/**
 * Windows that wait for something that may not come (a datagram a NAT drops, a punch that does
 * not get through). Unlike a deadline, a window is paid in full every time the answer is no, so
 * it stretches by how much slower a running process is (WGP2P_LAB_WINDOW_SCALE; `lab vm` sets it
 * from `node -e 0`), not by the cost of starting one, which in a TCG guest is 4-5x more again
 * (module loading) and is what deadlines cover. Unset: the time scale.
 */
export function windowScale(env: NodeJS.ProcessEnv = process.env): number {
  return parseScale(env.WGP2P_LAB_WINDOW_SCALE) ?? timeScale(env);
}

export function windowed(ms: number, env: NodeJS.ProcessEnv = process.env): number {
  return Math.round(ms * windowScale(env));
}

function parseScale(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  return Number.isFinite(v) && v >= 1 && v <= 100 ? v : undefined;
}
