import type { Cancel, Clock } from '../../src/core/clock.js';

/** A clock that moves only when told: timers fire in order of their due time, all within `advance`. */
export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private pending: { at: number; n: number; fn: () => void }[] = [];

  constructor(start = 1_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Cancel {
    const entry = { at: this.t + Math.max(0, ms), n: this.seq++, fn };
    this.pending.push(entry);
    return () => {
      this.pending = this.pending.filter((e) => e !== entry);
    };
  }

  /** Moves time forward by `ms`, running every timer that falls due (and any they arm within the span). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await new Promise((r) => setImmediate(r));
      this.pending.sort((a, b) => a.at - b.at || a.n - b.n);
      const next = this.pending[0];
      if (!next || next.at > end) break;
      this.pending.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await new Promise((r) => setImmediate(r));
  }

  get timers(): number {
    return this.pending.length;
  }
}
