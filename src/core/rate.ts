import type { Clock } from './clock.js';

/**
 * Two small guards for anything a peer controls the volume of: a token bucket (how much work it
 * may cause) and a throttled log line (how much disk it may fill). Both take the time as an
 * argument, so tests drive them with a fake clock.
 */

/** `rate` tokens a second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  /** Takes `cost` tokens if there are that many; false (and nothing taken) if not. */
  take(cost: number, now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }
}

/** At most one line per `intervalMs`; the next line says how many were left out meanwhile. */
export class LogThrottle {
  private last = -Infinity;
  private suppressed = 0;

  constructor(private readonly intervalMs: number) {}

  /** Calls `write(suppressedSinceLast)` if a line is due now; counts the event otherwise. */
  note(now: number, write: (suppressed: number) => void): void {
    if (now - this.last < this.intervalMs) {
      this.suppressed++;
      return;
    }
    write(this.suppressed);
    this.last = now;
    this.suppressed = 0;
  }
}


/**
 * Per key, runs an action at once, then at most once per `gapMs`: a call within the gap is
 * deferred to its end, and calls meanwhile collapse into that one (the latest action wins). So
 * a node that roams once is acted on without delay, and one whose endpoint flaps 100 times in
 * 3 s is acted on a handful of times.
 */
export class Spacer {
  private last = new Map<string, number>();
  private pending = new Map<string, { action: () => void; cancel: () => void }>();

  constructor(
    private readonly gapMs: number,
    private readonly clock: Clock,
  ) {}

  run(key: string, action: () => void): void {
    const now = this.clock.now();
    const last = this.last.get(key);
    const waiting = this.pending.get(key);
    if (waiting) {
      waiting.action = action;
      return;
    }
    if (last === undefined || now - last >= this.gapMs) {
      this.last.set(key, now);
      action();
      return;
    }
    const entry: { action: () => void; cancel: () => void } = { action, cancel: () => undefined };
    entry.cancel = this.clock.after(last + this.gapMs - now, () => {
      this.pending.delete(key);
      this.last.set(key, this.clock.now());
      entry.action();
    });
    this.pending.set(key, entry);
  }

  forget(key: string): void {
    this.pending.get(key)?.cancel();
    this.pending.delete(key);
    this.last.delete(key);
  }

  clear(): void {
    for (const p of this.pending.values()) p.cancel();
    this.pending.clear();
    this.last.clear();
  }
}
