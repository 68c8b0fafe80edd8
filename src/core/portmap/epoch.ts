/**
 * A PCP or NAT-PMP server's epoch: the seconds since its mapping state began, sent in every
 * reply. A router that rebooted (or lost its state some other way) starts again near zero, and
 * its mappings are gone: the client must map again. RFC 6887 section 8.5 (and RFC 6886 section
 * 3.6 in other words) says how to tell, comparing how far the server's clock moved with how far
 * ours did since the last reply:
 * - the server's epoch went back by more than 1 s: lost state;
 * - otherwise the two moved apart by more than 1/16 plus 2 s (clock drift and rounding): lost state.
 */

export interface EpochSample {
  /** The server's epoch in the reply, seconds. */
  serverS: number;
  /** Our clock when the reply came, ms. */
  clientMs: number;
}

export type EpochVerdict = { ok: true } | { ok: false; problem: string };

export function checkEpoch(prev: EpochSample | null, next: EpochSample): EpochVerdict {
  if (prev === null) return { ok: true };
  if (next.serverS + 1 < prev.serverS) return { ok: false, problem: `router's epoch went back from ${prev.serverS} s to ${next.serverS} s: it lost its mappings (rebooted?)` };
  const clientDelta = (next.clientMs - prev.clientMs) / 1000;
  const serverDelta = next.serverS - prev.serverS;
  if (clientDelta + 2 < serverDelta - serverDelta / 16) return { ok: false, problem: `router's epoch moved ${serverDelta} s while ours moved ${clientDelta.toFixed(1)} s` };
  if (serverDelta + 2 < clientDelta - clientDelta / 16) return { ok: false, problem: `router's epoch moved ${serverDelta} s while ours moved ${clientDelta.toFixed(1)} s: it lost its mappings (rebooted?)` };
  return { ok: true };
}
