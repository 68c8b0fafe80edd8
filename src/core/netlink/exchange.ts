import { decodeAcknowledgement, NetlinkError, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, type NetlinkMessage } from './message.js';

/**
 * What one request is waiting for, as an explicit state: a dump collects NLM_F_MULTI parts until
 * NLMSG_DONE (whose int is the dump's errno); an acknowledged request waits for the one
 * NLMSG_ERROR (errno 0 is the ack). The socket feeds messages with the request's sequence number
 * in; the exchange says when it is finished. No socket, no timers (parts are appended in place:
 * copying the list per part would make a long dump quadratic).
 */

export type ExchangeState =
  | { kind: 'waiting'; parts: NetlinkMessage[]; bytes: number; interrupted: boolean }
  | { kind: 'done'; parts: NetlinkMessage[]; interrupted: boolean }
  | { kind: 'failed'; error: NetlinkError };

export type ExchangeMode = 'dump' | 'ack';

/** Caps what one dump may collect: far above 10,000 peers (≈ 2 MB), far below what would exhaust memory. */
export const MAX_DUMP_BYTES = 64 * 1024 * 1024;

export function startExchange(): ExchangeState {
  return { kind: 'waiting', parts: [], bytes: 0, interrupted: false };
}

function failed(err: NetlinkError): ExchangeState {
  return { kind: 'failed', error: err };
}

export function refusal(errno: number, message: string | undefined, what: string): NetlinkError {
  const detail = message ? `: ${message}` : '';
  return new NetlinkError(`${what} refused by the kernel (errno ${errno}${detail})`, errno);
}

export function stepExchange(state: ExchangeState, mode: ExchangeMode, m: NetlinkMessage, what: string): ExchangeState {
  if (state.kind !== 'waiting') return state;
  if (m.type === NLMSG_NOOP) return state;
  if (m.type === NLMSG_OVERRUN) return failed(new NetlinkError(`${what}: the kernel reported lost data (NLMSG_OVERRUN); read again`));
  const interrupted = state.interrupted || (m.flags & NLM_F_DUMP_INTR) !== 0;
  if (m.type === NLMSG_ERROR) {
    const ack = decodeAcknowledgement(m);
    if (ack.errno !== 0) return failed(refusal(ack.errno, ack.message, what));
    // A dump never ends in an ack; an acked request ends in one.
    return mode === 'ack' ? { kind: 'done', parts: state.parts, interrupted } : { ...state, interrupted };
  }
  if (m.type === NLMSG_DONE) {
    const ack = decodeAcknowledgement(m);
    if (ack.errno !== 0) return failed(refusal(ack.errno, ack.message, what));
    return { kind: 'done', parts: state.parts, interrupted };
  }
  const bytes = state.bytes + m.payload.length;
  if (bytes > MAX_DUMP_BYTES) return failed(new NetlinkError(`${what}: the reply exceeds ${MAX_DUMP_BYTES} bytes; refusing to collect more`));
  state.parts.push(m);
  return { kind: 'waiting', parts: state.parts, bytes, interrupted };
}
