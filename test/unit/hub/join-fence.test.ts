import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import WebSocket from 'ws';
import { createLogger } from '../../../src/core/log.js';
import { ControlApi } from '../../../src/hub/control-api.js';
import { DirectoryView } from '../../../src/hub/directory-view.js';
import { ENROL_GRACE_MS } from '../../../src/hub/device-peers.js';
import { fencedAddresses } from '../../../src/hub/join-fence.js';
import { AgentSessions } from '../../../src/hub/sessions.js';
import type { DirectoryStore } from '../../../src/hub/store/store.js';
import { keyOf, testHub, testNode } from './fixtures.js';

const log = createLogger('test', 'silent');
// Join tunnels live in the proxied subnet: make it loopback's, so this test can be the device.
const JOIN = '127.0.1.2';

function call(port: number, method: string, path: string, body?: string): Promise<{ status: number; error?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, localAddress: JOIN, method, path, headers: { authorization: 'Bearer x' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, error: (JSON.parse(text || '{}') as { error?: string }).error }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function upgrade(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { localAddress: JOIN, headers: { authorization: 'Bearer x' } });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => resolve(101));
    ws.on('error', () => undefined);
  });
}

test('a join tunnel\'s address reaches only POST /v1/enrol on the control API: every other route and WebSocket is 403, saying why (issue 10, finding 6)', async () => {
  const hub = testHub('10.99.0.1/24', '127.0.1.0/24');
  const view = new DirectoryView();
  const joining = testNode('dev', 2, ['g'], { enrolKey: keyOf('one-time'), enrolExpiresAt: Date.now() + 60_000, tokenHash: null });
  view.apply({ revision: 1, reset: true, upserted: [joining], removed: [] });
  const settings = () => ({ peerKeepalive: 25, staleAfterSec: 120, hubPublicKey: hub.publicKey, hubAllowedIps: [], proxied: false });
  const sessions = new AgentSessions({ hub, view, settingsFor: settings, seen: () => undefined, onMessage: () => undefined, onGone: () => undefined, log });
  const api = new ControlApi({ hub, store: {} as DirectoryStore, view, sessions, settingsFor: settings, seen: () => undefined, relayConnected: () => undefined, enrolled: async () => undefined, log });
  const port = await api.listen('127.0.0.1', 0, 'hub');
  try {
    for (const [method, path] of [['GET', '/v1/peers'], ['POST', '/v1/report'], ['GET', '/v1/enrol'], ['GET', '/'], ['DELETE', '/v1/nodes/dev']]) {
      const r = await call(port, method, path, method === 'POST' ? '{"type":"report","peers":[]}' : undefined);
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.match(r.error ?? '', /join tunnel of "dev": it reaches only POST \/v1\/enrol/, `${method} ${path} says why`);
    }
    for (const path of ['/v1/agent', '/v1/relay', '/v1/anything']) assert.equal(await upgrade(port, path), 403, `WebSocket ${path}`);
    // The one route it has: the enrolment handler answers (here: the body is not a key).
    const enrol = await call(port, 'POST', '/v1/enrol', '{}');
    assert.equal(enrol.status, 400);
    assert.match(enrol.error ?? '', /publicKey/);
  } finally {
    await api.close();
  }
});

test('the forwarding fence covers exactly the addresses whose one-time peers the hub holds (issue 10, finding 6)', () => {
  const hub = testHub();
  const now = 1_000_000_000;
  const pending = testNode('pending', 2, ['g'], { enrolKey: keyOf('k2'), enrolExpiresAt: now + 60_000 });
  const expired = testNode('expired', 3, ['g'], { enrolKey: keyOf('k3'), enrolExpiresAt: now - 60_000 });
  const stale = testNode('stale', 4, ['g'], { enrolKey: keyOf('k4'), enrolExpiresAt: now - ENROL_GRACE_MS - 1 });
  const joined = testNode('joined', 5, ['g'], { enrolKey: keyOf('k5'), enrolExpiresAt: now + 60_000, enrolUsed: true, tokenHash: 'x' });
  const agent = testNode('agent', 6, ['g']);
  const fenced = fencedAddresses(hub, [pending, expired, stale, joined, agent], now).map(String);
  assert.deepEqual(fenced, ['10.99.1.2', 'fd3c:1a2b:3c4d:1::2', '10.99.1.3', 'fd3c:1a2b:3c4d:1::3'], 'pending codes, expired ones in their grace (the hub still answers them), both families');
});
