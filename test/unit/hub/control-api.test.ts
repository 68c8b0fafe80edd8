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
  const port = await a.listen('127.0.0.1', 0, 'hub');
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

test('the control API holds at most N connections per source; a freed slot can be used again (issue 10, finding 10)', async () => {
  const { a, port } = await api({ perSource: 3 });
  const conns: ReturnType<typeof open>[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      conns.push(open(port));
      await conns[i].connected;
    }
    // Refused ones close at once; 1 s is for a loaded machine, and a kept one stays open throughout.
    const closed = await Promise.all(conns.map((c) => within(c.closed, 1000)));
    assert.deepEqual(closed, [false, false, false, true, true, true], 'the 4th to 6th connection of one source are refused');
    conns[0].socket.destroy();
    await conns[0].closed;
    const again = open(port);
    conns.push(again);
    await again.connected;
    assert.equal(await within(again.closed, 1000), false, 'a freed slot can be used again');
  } finally {
    for (const c of conns) c.socket.destroy();
    await a.close();
  }
});

test('a connection whose headers do not arrive in time is ended, whether it sends half of them or nothing (slowloris; issue 10, finding 10)', async () => {
  const { a, port } = await api({ headersTimeoutMs: 300 });
  const half = open(port);
  const silent = open(port);
  try {
    await Promise.all([half.connected, silent.connected]);
    half.socket.write('GET /v1/peers HTTP/1.1\r\nHost: x\r\n');
    assert.deepEqual(await Promise.all([within(half.closed, 5000), within(silent.closed, 5000)]), [true, true]);
  } finally {
    half.socket.destroy();
    silent.socket.destroy();
    await a.close();
  }
});
