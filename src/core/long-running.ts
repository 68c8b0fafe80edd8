import type { Logger } from './log.js';
import { LogThrottle } from './rate.js';

/**
 * For the processes that must stay up (hub, agent, relay): an error that escaped a handler is
 * logged and the process goes on serving, instead of Node ending it (a failed device update in
 * a join once took the whole hub down). At most one line per 10 s, with the count of the others,
 * so that a peer that can trigger errors cannot fill the disk with them.
 */
export function keepRunning(log: Logger, intervalMs = 10_000): void {
  const throttle = new LogThrottle(intervalMs);
  const report = (kind: string, err: unknown) => throttle.note(Date.now(), (suppressed) => log.error({ err, suppressed }, `${kind}: the process goes on; this is a bug, please report it`));
  process.on('unhandledRejection', (err) => report('unhandled rejection', err));
  process.on('uncaughtException', (err) => report('uncaught exception', err));
}
