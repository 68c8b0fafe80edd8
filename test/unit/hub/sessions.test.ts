import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { WebSocket } from 'ws';
import pino from 'pino';
import { printable, renderTable } from '../../../src/cli/table.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { LogThrottle, TokenBucket } from '../../../src/core/rate.js';
import { DirectoryView } from '../../../src/hub/directory-view.js';
import { AgentSessions } from '../../../src/hub/sessions.js';
import { keyOf, testHub, testNode } from './fixtures.js';

class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  sent: string[] = [];
  send(m: string): void {
    this.sent.push(m);
  }
  close(): void {
    this.readyState = 3;
  }
  terminate(): void {
    this.readyState = 3;
  }
  ping(): void {}
}

function setup() {
  const lines: { msg: string; more?: number }[] = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(JSON.parse(l) as { msg: string; more?: number }) });
  const hub = testHub();
  const view = new DirectoryView();
  const a = testNode('a', 2, ['g']);
  const b = testNode('b', 3, ['g']);
  const stranger = testNode('stranger', 4, ['other']);
  view.apply({ revision: 1, reset: true, upserted: [a, b, stranger], removed: [] });
  const decoded: string[] = [];
  const sessions = new AgentSessions({ hub, view, settingsFor: () => ({ peerKeepalive: 25, staleAfterSec: 120, hubPublicKey: hub.publicKey, hubAllowedIps: [], proxied: false }), seen: () => undefined, onMessage: (_s, m) => decoded.push(m.type), onGone: () => undefined, log });
  const ws = new FakeSocket();
  sessions.attach(a, ws as unknown as WebSocket);
  return { sessions, ws, decoded, lines, a, b, stranger };
}

const event = (publicKey: string, seq: number) => JSON.stringify({ type: 'path-event', event: 'ready', publicKey, seq });

test('one agent cannot saturate the hub: past its budget messages are dropped undecoded, and said so once (issue 10, finding 14)', () => {
  const { ws, decoded, lines, b } = setup();
  for (let i = 0; i < 1000; i++) ws.emit('message', Buffer.from(event(b.publicKey, i)), false);
  // 200 saved up, plus what 50 a second refilled while the loop ran (a few ms).
  assert.ok(decoded.length >= 200 && decoded.length < 230, `a burst of 200 messages, then 50 a second: ${decoded.length} of 1000 decoded`);
  const warned = lines.filter((l) => /over its message budget/.test(l.msg));
  assert.equal(warned.length, 1, `one line, not 800: ${JSON.stringify(lines.slice(0, 3))}`);
});

test('malformed messages are logged at most once per interval, with the count of the rest (issue 10, finding 14)', () => {
  const { ws, decoded, lines } = setup();
  for (let i = 0; i < 100; i++) ws.emit('message', Buffer.from('{"type":"report","peers":"x"}'), false);
  assert.equal(decoded.length, 0);
  assert.equal(lines.filter((l) => l.msg === 'malformed message ignored').length, 1);
});

test('an agent\'s reports count only for peers it may see; the terminal never gets their control characters (issue 10, Low)', () => {
  const { sessions, a, b, stranger } = setup();
  const s = sessions.get(a.publicKey)!;
  const report = (publicKey: string, reason: string) => ({ publicKey, path: 'direct' as const, endpoint: Endpoint.parse('203.0.113.9:1'), handshakeAgeMs: 1, rxBytes: 0, txBytes: 0, directAfterMs: null, reason });
  sessions.acceptReport(s, [report(b.publicKey, 'ok'), report(stranger.publicKey, 'hi'), report(keyOf('nobody'), 'x')]);
  assert.deepEqual([...s.reports.keys()], [b.publicKey], 'another group\'s node and unknown keys are dropped');
  assert.equal(printable('direct\u001b[2J\u001b[Hfake\r\n'), 'direct?[2J?[Hfake??');
  assert.doesNotMatch(renderTable(['WHY'], [['a\u001b]0;title\u0007b']]), /\u001b|\u0007/);
});

test('token bucket and log throttle, on a clock given to them', () => {
  const t = new TokenBucket(10, 20, 0);
  let n = 0;
  while (t.take(1, 0)) n++;
  assert.equal(n, 20);
  assert.equal(t.take(1, 50), false);
  assert.equal(t.take(1, 100), true, '10 a second: one more after 100 ms');
  const lt = new LogThrottle(1000);
  const written: number[] = [];
  for (const at of [0, 10, 20, 999, 1000, 1001]) lt.note(at, (more) => written.push(more));
  assert.deepEqual(written, [0, 3]);
});

test('a flapping endpoint is acted on at once, then at most once per gap, the latest winning (issue 10, finding 11)', async () => {
  const { Spacer } = await import('../../../src/core/rate.js');
  const { FakeClock } = await import('../fake-clock.js');
  const clock = new FakeClock(0);
  const spacer = new Spacer(1000, clock);
  const ran: string[] = [];
  for (let i = 0; i < 100; i++) {
    spacer.run('node', () => ran.push(`change ${i} at ${clock.now()}`));
    await clock.advance(30); // 100 changes in 3 s
  }
  await clock.advance(1000);
  assert.ok(ran.length <= 5, `a handful of re-decisions, not 100: ${ran.join('; ')}`);
  assert.equal(ran[0], 'change 0 at 0', 'the first one (a real roam) without delay');
  assert.match(ran.at(-1)!, /^change 99 /, 'and the last one always happens');
  spacer.run('other', () => ran.push('other'));
  assert.equal(ran.at(-1), 'other', 'keys are spaced apart from each other');
});
