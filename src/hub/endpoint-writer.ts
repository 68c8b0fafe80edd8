import type { Endpoint } from '../core/net/endpoint.js';
import type { Observation } from './store/model.js';

/**
 * Records where the hub's device saw each node, off the device-poll path. The poll (every 20 ms)
 * only puts the latest endpoint per node in a map; a timer writes the map in batches. A failed
 * write puts its batch back (unless a newer endpoint came meanwhile: the latest always wins) and
 * is retried with backoff; it is logged once per run of failures, and once more when writes work
 * again; `health` says so meanwhile (the hub's `status` shows it). Nothing here throws into the
 * caller or waits for the store.
 */

/** While writes fail: how many observations wait, since when, and why the last write failed. */
export interface WriterHealth {
  degraded: boolean;
  pendingWrites: number;
  /** Failed writes in a row (0 when the last write worked). */
  failures: number;
  lastError: string | null;
  /** When the current run of failures began (clock ms), or null. */
  failingSince: number | null;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** The part of a pino logger the writer uses. */
export interface WriterLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface EndpointWriterOptions {
  write(batch: readonly Observation[]): Promise<void>;
  log: WriterLog;
  /**
   * How long observations gather before a write. A hub restart sees every node's endpoint in its
   * first poll, so they go out as one batch (of maxBatch each) instead of thousands of commits;
   * later, roams come one by one anyway. Client configs made by the CLI read these: 100 ms keeps
   * a config made right after an agent connected current.
   */
  delayMs?: number;
  /** First retry after a failed write; doubles up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  /** Observations per write: keeps one write's transaction short (the SQLite engine runs on the hub's event loop). */
  maxBatch?: number;
  clock?: Clock;
}

export class EndpointWriter {
  private readonly pending = new Map<string, Observation>();
  private timer: unknown;
  private writing?: Promise<void>;
  private failures = 0;
  private lastError: string | null = null;
  private failingSince: number | null = null;
  private closed = false;
  private readonly clock: Clock;
  private readonly delayMs: number;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private readonly maxBatch: number;
  readonly stats = { written: 0, failedWrites: 0 };

  constructor(private readonly opts: EndpointWriterOptions) {
    this.clock = opts.clock ?? systemClock;
    this.delayMs = opts.delayMs ?? 100;
    this.retryMs = opts.retryMs ?? 1000;
    this.maxRetryMs = opts.maxRetryMs ?? 30_000;
    this.maxBatch = opts.maxBatch ?? 500;
  }

  /** Observations not yet written. */
  get backlog(): number {
    return this.pending.size;
  }

  get health(): WriterHealth {
    return { degraded: this.failures > 0, pendingWrites: this.pending.size, failures: this.failures, lastError: this.lastError, failingSince: this.failingSince };
  }

  /** O(1), never throws, never waits. */
  record(publicKey: string, endpoint: Endpoint, at = this.clock.now()): void {
    if (this.closed) return;
    // The latest per node and family: an IPv6 sighting does not replace the IPv4 one.
    const key = slot(publicKey, endpoint);
    this.pending.delete(key);
    this.pending.set(key, { publicKey, endpoint, at });
    this.schedule(this.failures ? this.retryDelay() : this.delayMs);
  }

  /** Writes what is pending now; settles when written, or when a write failed (then it is retried later). */
  async flush(): Promise<void> {
    this.cancel();
    if (this.writing) await this.writing;
    while (this.pending.size > 0) {
      const before = this.stats.failedWrites;
      await this.writeBatch();
      if (this.stats.failedWrites > before) break;
    }
  }

  /** A last attempt to write what is pending; later records are ignored. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    this.cancel();
  }

  private schedule(ms: number): void {
    if (this.timer !== undefined || this.writing || this.closed) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.writeBatch().then(() => this.next());
    }, ms);
  }

  private cancel(): void {
    if (this.timer === undefined) return;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** After a batch: more pending goes out at once if the store is fine, after the backoff if not. */
  private next(): void {
    if (this.pending.size === 0) return;
    this.schedule(this.failures ? this.retryDelay() : 0);
  }

  private retryDelay(): number {
    return Math.min(this.maxRetryMs, this.retryMs * 2 ** Math.max(0, this.failures - 1));
  }

  private writeBatch(): Promise<void> {
    if (this.writing) return this.writing;
    const batch: Observation[] = [];
    for (const o of this.pending.values()) {
      if (batch.length >= this.maxBatch) break;
      batch.push(o);
    }
    for (const o of batch) this.pending.delete(slot(o.publicKey, o.endpoint));
    if (batch.length === 0) return Promise.resolve();
    const run = (async () => {
      try {
        await this.opts.write(batch);
        this.stats.written += batch.length;
        if (this.failures > 0) this.opts.log.info({ failedWrites: this.failures, backlog: this.pending.size }, 'observed endpoints are written again');
        this.failures = 0;
        this.lastError = null;
        this.failingSince = null;
      } catch (err) {
        // Put back what no newer observation replaced meanwhile.
        for (const o of batch) if (!this.pending.has(slot(o.publicKey, o.endpoint))) this.pending.set(slot(o.publicKey, o.endpoint), o);
        this.failures++;
        this.stats.failedWrites++;
        this.lastError = err instanceof Error ? err.message : String(err);
        this.failingSince ??= this.clock.now();
        if (this.failures === 1) this.opts.log.warn({ err, backlog: this.pending.size }, 'could not record observed endpoints; retrying (logged once until it works again)');
      } finally {
        this.writing = undefined;
      }
    })();
    this.writing = run;
    return run;
  }
}

function slot(publicKey: string, endpoint: Endpoint): string {
  return `${publicKey} ${endpoint.family}`;
}
