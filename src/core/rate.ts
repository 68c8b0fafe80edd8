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
