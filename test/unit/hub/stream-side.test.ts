import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { HostPort } from '../../../src/core/net/endpoint.js';
import { connectStream } from '../../../src/core/stream/connect.js';
import { hashToken } from '../../../src/hub/directory.js';
import { agentTokenCheck, startHubStreamSide } from '../../../src/hub/stream-side.js';
import { hubStreamConfig, planHubStream, writeHubStream } from '../../../src/hub/stream-identity.js';
import type { NodeRecord } from '../../../src/hub/store/model.js';
import { node, RawClient, silent, udpPeer, until } from '../stream-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'wgp2p-stream-side-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const A = node();
const record = (over: Partial<NodeRecord>): NodeRecord => ({ kind: 'agent', tokenHash: hashToken(A.token), enrolKey: null, enrolUsed: false, publicKey: A.publicKey, ...over }) as NodeRecord;

test("an agent's token opens the stream; a client, a relay, a pending join or another token do not", () => {
  const check = (n: NodeRecord | undefined, token = A.token) => agentTokenCheck(() => n)(A.publicKey, token);
  assert.equal(check(record({})), true);
  assert.equal(check(record({}), 'x'.repeat(43)), false);
  assert.equal(check(record({ kind: 'client', tokenHash: null })), false);
  assert.equal(check(record({ kind: 'relay' })), false);
  assert.equal(check(record({ enrolKey: 'k', enrolUsed: false })), false);
  assert.equal(check(undefined), false);
});

test("the hub's stream side: its identity from hub init, agents' hub peers to the hub's WireGuard port; none for a hub made with --no-tcp", async () => {
  writeHubStream(dir, await planHubStream({ port: 443 }));
  const pin = hubStreamConfig(dir)!.pin;
  const wg = await udpPeer();
  const side = await startHubStreamSide({ dir, port: 0, byKey: (k) => (k === A.publicKey ? record({}) : undefined), listenPort: wg.port, log: silent });
  assert.ok(side);
  try {
    const c = new RawClient(await connectStream({ relay: HostPort.parse(`127.0.0.1:${side.port}`), trust: { pin }, transport: 'tls' }));
    c.hello(A);
    await c.waitControl('welcome');
    c.send({ type: 'open', channel: 0, to: { kind: 'hub' } });
    c.data(0, Buffer.from([4, 0, 0, 0, 1, 2, 3, 4]));
    await until(() => wg.got.length === 1, "the datagram at the hub's WireGuard");
    c.close();
  } finally {
    await side.server.close();
    wg.close();
  }
  const off = mkdtempSync(join(dir, 'off-'));
  writeHubStream(off, await planHubStream({ port: null }));
  assert.equal(existsSync(join(off, 'tls.crt')), true);
  assert.equal(await startHubStreamSide({ dir: off, byKey: () => undefined, listenPort: 1, log: silent }), undefined);
});
