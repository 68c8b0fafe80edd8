/**
 * Whether a committed path still carries anything from the peer. Both sides send keepalives
 * every K s, so an idle live path brings something within K s: 2K + 5 s of nothing is a dead
 * path. Sooner when we sent data: WireGuard answers data it received with a keepalive after
 * 10 s at the latest (KEEPALIVE_TIMEOUT), so data out and nothing back for 12 s is a dead path
 * too. Keepalives alone are 32 bytes each; "data" is more than a few of them.
 */

const DATA_UNANSWERED_MS = 12_000;
const DATA_BYTES = 256;

export class Liveness {
  private lastRx = 0;
  private lastRxAt: number;
  private txAtLastRx = 0;
  private reported = false;

  constructor(now: number) {
    this.lastRxAt = now;
  }

  /** A reading of the peer's counters; returns whether something new arrived. */
  observe(rx: number, tx: number, now: number): boolean {
    const grew = rx > this.lastRx;
    // Counters going down: the peer entry was re-created; start over from its new counters.
    if (grew || rx < this.lastRx) {
      this.lastRx = rx;
      this.lastRxAt = now;
      this.txAtLastRx = tx;
      this.reported = false;
    }
    if (tx < this.txAtLastRx) this.txAtLastRx = tx;
    return grew;
  }

  /** A path was just committed: its silence counts from now, its data from `tx`. */
  restart(now: number, tx: number): void {
    this.lastRxAt = now;
    this.txAtLastRx = tx;
    this.reported = false;
  }

  /** Why the path is dead, once per silence; null while it is alive (or already reported). */
  dead(now: number, tx: number, keepaliveSec: number): string | null {
    if (this.reported) return null;
    const quiet = now - this.lastRxAt;
    if (quiet > (2 * (keepaliveSec || 25) + 5) * 1000 || (quiet > DATA_UNANSWERED_MS && tx - this.txAtLastRx >= DATA_BYTES)) {
      this.reported = true;
      return `nothing from the peer for ${Math.round(quiet / 1000)} s`;
    }
    return null;
  }
}
