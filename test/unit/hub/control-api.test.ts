import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { createLogger } from '../../../src/core/log.js';
import { ControlApi } from '../../../src/hub/control-api.js';
import { DirectoryView } from '../../../src/hub/directory-view.js';
import { AgentSessions } from '../../../src/hub/sessions.js';
import type { DirectoryStore } from '../../../src/hub/store/store.js';
import { testHub } from './fixtures.js';

const log = createLogger('test', 'silent');

async function api(limits: ConstructorParameters<typeof ControlApi>[0]['limits']) {
  const hub = testHub();
  const view = new DirectoryView();
  const sessions = new AgentSessions({ hub, view, settingsFor: () => ({ peerKeepalive: 25, staleAfterSec: 120, hubPublicKey: hub.publicKey, hubAllowedIps: [], proxied: false }), seen: () => undefined, onMessage: () => undefined, onGone: () => undefined, log });
  const a = new ControlApi({ hub, store: {} as DirectoryStore, view, sessions, settingsFor: () => ({ peerKeepalive: 25, staleAfterSec: 120, hubPublicKey: hub.publicKey, hubAllowedIps: [], proxied: false }), seen: () => undefined, relayConnected: () => undefined, enrolled: async () => undefined, log, limits });
  const port = 40_000 + (process.pid % 10_000);
  await a.listen('127.0.0.1', port, 'hub');
  return { a, port };
}

/** A connection that remembers when it closed, from the moment it was made. */
function open(port: number): { socket: Socket; closed: Promise<void>; connected: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  // Read whatever comes (a 408): a socket nobody reads never sees the end, and never closes.
  socket.resume();
  return { socket, closed: new Promise((r) => socket.once('close', () => r())), connected: new Promise((r) => socket.once('connect', () => r())) };
}

const within = (p: Promise<void>, ms: number) => Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

test('the control API holds at most N connections per source, and drops one that sends its headers too slowly (issue 10, finding 10)', async () => {
  const { a, port } = await api({ perSource: 3, headersTimeoutMs: 300 });
  const conns: ReturnType<typeof open>[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      conns.push(open(port));
      await conns[i].connected;
    }
    const closed = await Promise.all(conns.map((c) => within(c.closed, 400)));
    assert.deepEqual(closed, [false, false, false, true, true, true], 'the 4th to 6th connection of one source are refused');
    // A slowloris: half a request line, then nothing.
    conns[0].socket.write('GET /v1/peers HTTP/1.1\r\nHost: x\r\n');
    assert.equal(await within(conns[0].closed, 2500), true, 'headers that do not arrive within the timeout end the connection');
    const again = open(port);
    conns.push(again);
    await again.connected;
    assert.equal(await within(again.closed, 400), false, 'a freed slot can be used again');
  } finally {
    for (const c of conns) c.socket.destroy();
    await a.close();
  }
});
