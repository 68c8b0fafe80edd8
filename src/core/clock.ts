/**
 * Time and timers behind one small interface, so that state machines and their coordinators run
 * on a fake clock in tests (test/unit/fake-clock.ts) exactly as on the real one.
 */
export interface Clock {
  now(): number;
  after(ms: number, fn: () => void): Cancel;
}

export type Cancel = () => void;

export const realClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

/** Named timers of one owner: arming a name replaces its timer, so a stale one can never fire. */
export class KeyedTimers<K extends string = string> {
  private timers = new Map<K, Cancel>();

  constructor(private readonly clock: Clock) {}

  arm(key: K, ms: number, fn: () => void): void {
    this.timers.get(key)?.();
    const cancel = this.clock.after(ms, () => {
      if (this.timers.get(key) !== cancel) return;
      this.timers.delete(key);
      fn();
    });
    this.timers.set(key, cancel);
  }

  disarm(key: K): void {
    this.timers.get(key)?.();
    this.timers.delete(key);
  }

  armed(key: K): boolean {
    return this.timers.has(key);
  }

  clear(): void {
    for (const c of this.timers.values()) c();
    this.timers.clear();
  }
}
