import type { WebSocket } from 'ws';
import type { Clock } from './clock.js';

/**
 * WebSocket ping/pong on a control connection, on both ends. Without it a peer that died (power
 * cut, NAT or tunnel gone) counts as connected until TCP gives up: with nothing in flight that is
 * never, with data unacknowledged some 15 minutes of retransmits. A ping every 10 s and the
 * connection ended after 2 missed pongs: a dead peer is dropped within 30 s (the tick that sees
 * the 2nd miss comes at most 3 intervals after the last pong). What it costs: one ~100-byte
 * ping and its pong per agent per 10 s through the tunnel, 1,000 frames a second at a hub of
 * 10,000 agents, a tenth of what their 1 s WireGuard keepalives already send; halving the
 * detection time doubles that. ws answers pings by itself, so a live peer needs nothing more.
 */
export interface HeartbeatOptions {
  intervalMs: number;
  /** Consecutive unanswered pings after which the connection is ended. */
  missLimit: number;
  clock?: Clock;
}

export const HEARTBEAT: HeartbeatOptions = { intervalMs: 10_000, missLimit: 2 };

/** Pings `ws` until it closes; terminates it (so its 'close' fires) when `missLimit` pings in a row go unanswered. */
export function heartbeat(ws: WebSocket, opts: HeartbeatOptions = HEARTBEAT, onDead?: () => void): void {
  const clock = opts.clock ?? unrefClock;
  let outstanding = false;
  let missed = 0;
  let cancel: (() => void) | undefined;
  let closed = false;
  ws.on('pong', () => {
    outstanding = false;
    missed = 0;
  });
  ws.once('close', () => {
    closed = true;
    cancel?.();
  });
  const tick = () => {
    if (closed || ws.readyState !== ws.OPEN) return;
    if (outstanding && ++missed >= opts.missLimit) {
      onDead?.();
      ws.terminate();
      return;
    }
    outstanding = true;
    ws.ping();
    cancel = clock.after(opts.intervalMs, tick);
  };
  cancel = clock.after(opts.intervalMs, tick);
}

/** Real time, but a heartbeat alone never keeps a process alive (the socket does, while it is open). */
const unrefClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms).unref();
    return () => clearTimeout(t);
  },
};
