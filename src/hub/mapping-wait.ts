import type { Cancel, Clock } from '../core/clock.js';

/**
 * A node whose agent is still asking its router for a port mapping holds its pairs' first
 * attempts, for at most WAIT_MS. Why: an attempt made before the mapping is known punches over
 * IPv4, and the mapped side's own punch leaves a conntrack entry on its router whose reply tuple
 * is the one a peer's packets through the mapping need; once the mapping is known, the router
 * drops those as a clash until the entry expires (30 s on Linux), and two such failures made the
 * hub distrust a working mapping for ten minutes. Seen in the NAT matrix under load: three
 * cells of the symmetric+upnp node relayed at once.
 *
 * The agent says pending only until its router's first answer, or 250 ms (agent/port-mapping/
 * mapper.ts, FIRST_ANSWER_MS: a router that serves PCP or NAT-PMP answers within a LAN round
 * trip; one that serves neither is not waited for). 1 s here covers that and the hello's trip.
 */
export const WAIT_MS = 1000;

export class MappingWait {
  private readonly waiting = new Map<string, Cancel>();

  constructor(
    private readonly clock: Clock,
    /** The node's pairs may start (the wait ended by an answer or by time). */
    private readonly settled: (key: string) => void,
  ) {}

  /**
   * What the node's latest hello said. A node waits only from its first pending hello, never
   * again (a later network change asks the router again, but its pairs are no longer new).
   * True when this hello ended the wait: its pairs start now, with what the hello said.
   */
  report(key: string, pending: boolean, first: boolean): boolean {
    if (pending && first && !this.waiting.has(key)) {
      this.waiting.set(key, this.clock.after(WAIT_MS, () => this.end(key)));
      return false;
    }
    return !pending && this.end(key);
  }

  pending(key: string): boolean {
    return this.waiting.has(key);
  }

  /** The node went away: nothing of it is kept. */
  forget(key: string): void {
    this.waiting.get(key)?.();
    this.waiting.delete(key);
  }

  private end(key: string): boolean {
    const cancel = this.waiting.get(key);
    if (!cancel) return false;
    cancel();
    this.waiting.delete(key);
    this.settled(key);
    return true;
  }
}
