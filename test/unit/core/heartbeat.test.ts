import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { createLogger } from '../../../src/core/log.js';
import { HubLink } from '../../../src/core/hub-link.js';
import { AgentSessions } from '../../../src/hub/sessions.js';
import { DirectoryView } from '../../../src/hub/directory-view.js';
import { FakeClock } from '../fake-clock.js';
import { testHub, testNode } from '../hub/fixtures.js';

const log = createLogger('test', 'silent');
const beat = (clock: FakeClock) => ({ intervalMs: 10_000, missLimit: 2, clock });

/** A WebSocket server on loopback; each accepted socket goes to `accept`. */
async function server(accept: (ws: WebSocket) => void): Promise<{ wss: WebSocketServer; url: string }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', accept);
  await once(wss, 'listening');
  return { wss, url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}` };
}

/** One heartbeat interval: the ping goes out, and a live peer's pong has time to come back over loopback. */
async function interval(clock: FakeClock, pongs: { n: number }, expectPong: boolean): Promise<void> {
  const before = pongs.n;
  await clock.advance(10_000);
  if (expectPong) while (pongs.n === before) await new Promise((r) => setTimeout(r, 5));
}

test('the hub ends the session of an agent that stops answering pings after 2 missed pongs, and keeps one that answers (issue 10, low: no WebSocket heartbeat)', { timeout: 30_000 }, async () => {
  const clock = new FakeClock();
  const hub = testHub();
  const view = new DirectoryView();
  const silent = testNode('silent', 2, ['g']);
  const live = testNode('live', 3, ['g']);
  view.apply({ revision: 1, reset: true, upserted: [silent, live], removed: [] });
  const gone: string[] = [];
  const sessions = new AgentSessions({ hub, view, settingsFor: () => ({ peerKeepalive: 25, staleAfterSec: 120, hubPublicKey: hub.publicKey, hubAllowedIps: [], proxied: false }), seen: () => undefined, onMessage: () => undefined, onGone: (s) => gone.push(s.node.name), log, heartbeat: beat(clock) });
  const pongs = { n: 0 };
  let order = 0;
  const { wss, url } = await server((ws) => {
    ws.on('pong', () => pongs.n++);
    sessions.attach(order++ === 0 ? silent : live, ws);
  });
  // The silent one reads nothing any more (as a hung process or a dead tunnel): no pong comes back.
  const a = new WebSocket(url, { autoPong: false });
  await once(a, 'open');
  while (sessions.size < 1) await new Promise((r) => setTimeout(r, 5));
  const b = new WebSocket(url);
  await once(b, 'open');
  while (sessions.size < 2) await new Promise((r) => setTimeout(r, 5));
  try {
    await interval(clock, pongs, true); // ping 1
    await interval(clock, pongs, true); // miss 1 of the silent one; ping 2
    assert.deepEqual(gone, [], 'one missed pong is not enough');
    assert.equal(sessions.size, 2);
    await interval(clock, pongs, true); // miss 2: ended
    while (gone.length === 0) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(gone, ['silent'], 'ended at the 2nd missed pong, within 3 intervals of its last answer');
    assert.ok(sessions.get(live.publicKey) && !sessions.get(silent.publicKey), 'the agent that answers stays connected');
    for (let i = 0; i < 5; i++) await interval(clock, pongs, true);
    assert.deepEqual(gone, ['silent'], 'however long it runs');
  } finally {
    a.terminate();
    b.terminate();
    wss.close();
  }
});

test('an agent drops a hub that stops answering pings and reconnects (issue 10, low: no WebSocket heartbeat)', { timeout: 30_000 }, async () => {
  const clock = new FakeClock();
  const accepted: WebSocket[] = [];
  const { wss, url } = await server((ws) => {
    accepted.push(ws);
    // The first connection's hub hangs: it stops reading, so it never answers a ping.
    if (accepted.length === 1) ws.pause();
  });
  let opened = 0;
  let closed = 0;
  const link = new HubLink<unknown, unknown>({
    config: { name: 'a', hubUrl: url.replace(/^ws/, 'http'), token: 't' } as ConstructorParameters<typeof HubLink>[0]['config'],
    path: '/v1/agent',
    schema: {} as ConstructorParameters<typeof HubLink<unknown, unknown>>[0]['schema'],
    log,
    onOpen: () => opened++,
    onMessage: () => undefined,
    onClose: () => closed++,
    heartbeat: beat(clock),
  });
  link.start();
  try {
    while (opened < 1) await new Promise((r) => setTimeout(r, 5));
    await clock.advance(10_000);
    await clock.advance(10_000);
    assert.equal(closed, 0, 'one missed pong is not enough');
    assert.equal(link.connected, true);
    await clock.advance(10_000);
    while (closed < 1) await new Promise((r) => setTimeout(r, 5));
    assert.equal(link.connected, false, 'the hung hub no longer counts as connected');
    // The reconnect timer is a real one (250 ms backoff).
    while (opened < 2) await new Promise((r) => setTimeout(r, 20));
    assert.equal(accepted.length, 2, 'and the agent connected again');
  } finally {
    link.stop();
    for (const ws of accepted) ws.terminate();
    wss.close();
  }
});
