/**
 * Whether a committed path still carries anything from the peer.
 *
 * An idle path cannot be judged by the peer's keepalives alone: WireGuard's persistent keepalive
 * is sent after K s without any authenticated packet *in either direction*, and receiving ours
 * restarts the peer's timer. With both sides at K, the side whose packets arrive first keeps the
 * other one quiet, for minutes at a time (in the NAT matrix, one side of an idle pair heard
 * nothing for 55 s while the path worked, and the old rule "2K + 5 s of nothing is a dead path"
 * tore it down). So after K + 5 s of nothing (a peer that sends on its own would have by then)
 * we send the peer one datagram of data through the tunnel: WireGuard answers data it received
 * with a keepalive within 10 s (KEEPALIVE_TIMEOUT) unless it sent something anyway, so nothing
 * within PROBE_ANSWER_MS of the probe is a dead path. Sooner when we sent data of our own: data
 * out and nothing back for DATA_UNANSWERED_MS is a dead path too.
 *
 * States: listening (the peer was heard at lastRxAt) -> probing (a probe left at probeAt) ->
 * listening again when anything arrives, or dead (reported once per silence).
 */

/** KEEPALIVE_TIMEOUT (10 s) plus room for a loaded machine and the device's reading interval. */
export const PROBE_ANSWER_MS = 12_000;
const DATA_UNANSWERED_MS = 12_000;
/** Keepalives alone are 32 bytes each; "data" is more than a few of them. */
const DATA_BYTES = 256;

export type LivenessVerdict = { type: 'probe' } | { type: 'dead'; reason: string } | null;

type State = { kind: 'listening' } | { kind: 'probing'; probeAt: number } | { kind: 'dead' };

export class Liveness {
  private lastRx = 0;
  private lastRxAt: number;
  private txAtLastRx = 0;
  private state: State = { kind: 'listening' };

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
      this.state = { kind: 'listening' };
    }
    if (tx < this.txAtLastRx) this.txAtLastRx = tx;
    return grew;
  }

  /** A path was just committed: its silence counts from now, its data from `tx`. */
  restart(now: number, tx: number): void {
    this.lastRxAt = now;
    this.txAtLastRx = tx;
    this.state = { kind: 'listening' };
  }

  /**
   * What to do now: send a probe (once per silence), report the path dead (once per silence),
   * or nothing. `tx` is the peer's sent-bytes counter.
   */
  check(now: number, tx: number, keepaliveSec: number): LivenessVerdict {
    const s = this.state;
    if (s.kind === 'dead') return null;
    const quiet = now - this.lastRxAt;
    if (quiet > DATA_UNANSWERED_MS && tx - this.txAtLastRx >= DATA_BYTES) return this.die(`nothing from the peer for ${Math.round(quiet / 1000)} s while we sent data`);
    if (s.kind === 'probing') {
      return now - s.probeAt > PROBE_ANSWER_MS ? this.die(`nothing from the peer for ${Math.round(quiet / 1000)} s, nor an answer to a probe within ${PROBE_ANSWER_MS / 1000} s`) : null;
    }
    if (quiet > ((keepaliveSec || 25) + 5) * 1000) {
      this.state = { kind: 'probing', probeAt: now };
      return { type: 'probe' };
    }
    return null;
  }

  private die(reason: string): LivenessVerdict {
    this.state = { kind: 'dead' };
    return { type: 'dead', reason };
  }
}
