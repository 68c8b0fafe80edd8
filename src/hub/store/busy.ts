import { setTimeout as sleep } from 'node:timers/promises';
import { StoreError } from './errors.js';

/**
 * Retries a store call that failed because another process held the lock, waiting between tries
 * without blocking (the hub's connection itself waits only HUB_LOCK_WAIT_MS per try). 20 tries
 * 100 ms apart outlast any CLI command's transaction by far, and stay well inside a joining
 * device's 10 s request timeout. Any other failure goes through at once.
 */
export async function retryWhileBusy<T>(fn: () => Promise<T>, tries = 20, gapMs = 100): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof StoreError && err.code === 'busy') || i >= tries) throw err;
      await sleep(gapMs);
    }
  }
}
