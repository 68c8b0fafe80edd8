import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { enrolReplySchema } from '../../../src/core/enrol-reply.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { addNode, hashToken } from '../../../src/hub/directory.js';
import { handleEnrol } from '../../../src/hub/enrol-api.js';
import type { NodeRecord } from '../../../src/hub/store/model.js';
import { HUB_LOCK_WAIT_MS } from '../../../src/hub/hub.js';
import { sqlitePath } from '../../../src/hub/store/sqlite.js';
import { createStore, openStore } from '../../../src/hub/store/store.js';
import { testHub } from './fixtures.js';

/** POST /v1/enrol from `source` (a join tunnel's address; on loopback any 127.x address can be a source). */
function enrol(port: number, source: string, publicKey: string): Promise<{ status: number; body: { token?: string; error?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, localAddress: source, method: 'POST', path: '/v1/enrol', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || '{}') as { token?: string; error?: string } }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ publicKey }));
  });
}

test('enrolment is atomic and can be retried: a failed device update leaves the code usable, a lost reply is asked again with the same key (issue 10, finding 1)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-enrol-'));
  // Join tunnels live in the proxied subnet: make it loopback's, so this test can be the device.
  const hub = testHub('10.99.0.1/24', '127.0.1.0/24');
  const store = await createStore(dir, hub);
  let server: Server | undefined;
  try {
    const { node } = await addNode(store, { name: 'laptop', kind: 'agent', joinValidMs: 60_000 });
    let current: NodeRecord = node;
    let failNext = true;
    server = createServer((req, res) => {
      handleEnrol(req, res, {
        hub,
        nodeAt: (h) => (h === current.hostNumber ? current : undefined),
        store,
        enrolled: async () => {
          if (failNext) {
            failNext = false;
            throw new Error('UAPI set failed (errno 1)');
          }
        },
      }).then(
        async () => (current = (await store.node('laptop'))!),
        async () => {
          current = (await store.node('laptop'))!;
          res.writeHead(500).end('{}');
        },
      );
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const source = '127.0.1.2';
    const device = generateKeyPair().publicKey;

    assert.equal((await enrol(port, source, device)).status, 500, 'the device update failed');
    const after = (await store.node('laptop'))!;
    assert.equal(after.enrolUsed, false, 'the code is not spent');
    assert.equal(after.publicKey, node.enrolKey, 'the node is known by the code\'s key again');

    const ok = await enrol(port, source, device);
    assert.equal(ok.status, 200);
    // The device checks the reply strictly (issue 10, finding 13): the hub's must pass that check.
    const checked = enrolReplySchema.safeParse(ok.body);
    assert.ok(checked.success, `the hub's reply passes the device's schema: ${checked.error?.message}`);
    const again = await enrol(port, source, device);
    assert.equal(again.status, 200, 'the same device asking again (its reply was lost) gets in');
    assert.notEqual(again.body.token, ok.body.token, 'with a new token');
    assert.equal((await store.node('laptop'))!.tokenHash, hashToken(again.body.token!), 'and only the new one is valid');

    const other = await enrol(port, source, generateKeyPair().publicKey);
    assert.equal(other.status, 409);
    assert.match(other.body.error ?? '', /already used/);
    assert.equal((await enrol(port, source, hub.publicKey)).status, 400, "the hub's own key is refused");
    assert.equal((await enrol(port, source, Buffer.alloc(32).toString('base64'))).status, 400, 'a low-order key is refused');
  } finally {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    await store.close();
    rmSync(dir, { recursive: true });
  }
});

test('an enrolment while another process holds the store\'s lock waits for it without blocking the hub, and is refused as "try again" (code still good) if it never comes (issue 10, finding 2)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-enrol-'));
  const hub = testHub('10.99.0.1/24', '127.0.1.0/24');
  await (await createStore(dir, hub)).close();
  const store = await openStore(dir, { lockWaitMs: HUB_LOCK_WAIT_MS });
  const other = new Database(sqlitePath(dir));
  let server: Server | undefined;
  try {
    const a = (await addNode(store, { name: 'laptop', kind: 'agent', joinValidMs: 60_000 })).node;
    const b = (await addNode(store, { name: 'dev2', kind: 'agent', joinValidMs: 60_000 })).node;
    const byHost = new Map([a, b].map((n) => [n.hostNumber, n]));
    server = createServer((req, res) => void handleEnrol(req, res, { hub, nodeAt: (h) => byHost.get(h), store, enrolled: async () => undefined }));
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;

    other.exec('BEGIN IMMEDIATE');
    const released = setTimeout(() => other.exec('COMMIT'), 300);
    const ok = await enrol(port, `127.0.1.${a.hostNumber}`, generateKeyPair().publicKey);
    clearTimeout(released);
    assert.equal(ok.status, 200, `enrolled once the lock was released: ${JSON.stringify(ok.body)}`);

    other.exec('BEGIN IMMEDIATE'); // and never released
    const refused = await enrol(port, `127.0.1.${b.hostNumber}`, generateKeyPair().publicKey);
    assert.equal(refused.status, 503);
    assert.match(refused.body.error ?? '', /the join code is still good, run "wgp2p join" again/);
    other.exec('ROLLBACK');
    assert.equal((await store.node('dev2'))!.enrolUsed, false, 'the code is not spent');
  } finally {
    if (other.inTransaction) other.exec('ROLLBACK');
    other.close();
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
