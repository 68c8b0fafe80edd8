import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { IpAddress } from '../../../src/core/net/address.js';
import { joinProof } from '../../../src/core/stream/join-proof.js';
import { STREAM_VERSION } from '../../../src/core/stream/messages.js';
import { generateTlsIdentity, type TlsIdentity } from '../../../src/core/stream/tls-identity.js';
import { generateKeyPair, type KeyPair } from '../../../src/core/wireguard/keys.js';
import { byEnrolKeyIn, joinStreamCheck } from '../../../src/hub/join-stream.js';
import type { NodeRecord } from '../../../src/hub/store/model.js';
import { fakeInitiation, fakeResponse, senderIndex } from '../../../src/lab/fake-wireguard.js';
import { Relay } from '../../../src/relay/relay.js';
import type { JoinVerdict } from '../../../src/relay/stream-session.js';
import { StreamServer } from '../../../src/relay/stream-server.js';
import { testHub, testNode } from '../hub/fixtures.js';
import { RawClient, silent, udpPeer, until, type Peer } from '../stream-fixtures.js';

/** Joins over the relay's stream side: a device with a join code and no token yet (issue 12). */

const hubSettings = testHub();
let identity: TlsIdentity;
let relay: Relay;
let hub: Peer;
const servers: StreamServer[] = [];
const clients: RawClient[] = [];
let code: KeyPair;
const nodes: NodeRecord[] = [];

async function server(authenticateJoin?: (k: string, p: string) => JoinVerdict): Promise<{ s: StreamServer; port: number }> {
  const s = new StreamServer({
    tls: identity,
    authenticate: () => false,
    authenticateJoin,
    streamSide: (id, k) => relay.streamSide(id, k),
    hub: { endpoint: hub.endpoint, source: IpAddress.parse('127.0.0.1') },
    limits: { helloDeadlineMs: 1500 },
    log: silent,
  });
  servers.push(s);
  return { s, port: await s.listen('127.0.0.1', 0) };
}

async function joining(port: number, proof = joinProof(code.privateKey, code.publicKey, hubSettings.publicKey)): Promise<RawClient> {
  const c = await RawClient.connect(port, identity.pin);
  clients.push(c);
  c.send({ type: 'join', v: STREAM_VERSION, enrolKey: code.publicKey, proof });
  return c;
}

const error = (c: RawClient) => c.controls().find((m) => m.type === 'error');
let main: { s: StreamServer; port: number };

before(async () => {
  identity = await generateTlsIdentity();
  relay = new Relay({ addresses: ['127.0.0.1'], portMin: 46400, portMax: 46420, idleMs: 60_000 });
  hub = await udpPeer('127.0.0.1');
  code = generateKeyPair();
  nodes.push(testNode('laptop', 5, ['default'], { publicKey: '', enrolKey: code.publicKey, enrolExpiresAt: Date.now() + 3600_000 }));
  main = await server(joinStreamCheck({ hub: hubSettings, byEnrolKey: byEnrolKeyIn(() => nodes), now: Date.now }));
});

after(async () => {
  clients.forEach((c) => c.close());
  await Promise.all(servers.map((s) => s.close()));
  await relay.close();
  hub.close();
});

describe('relay stream side: joins', () => {
  test("a join code's proof opens the hub channel: the one-time key's handshake reaches the hub's WireGuard and its answer comes back", async () => {
    const c = await joining(main.port);
    await c.waitControl('welcome');
    c.send({ type: 'open', channel: 0, to: { kind: 'hub' } });
    await c.waitControl('opened');
    hub.got.length = 0;
    hub.from.length = 0;
    const init = fakeInitiation(hubSettings.publicKey);
    c.data(0, init);
    await until(() => hub.got.length === 1, 'the initiation at the hub');
    assert.ok(hub.got[0].equals(init));
    assert.equal(hub.from[0].address, '127.0.0.1');
    const resp = fakeResponse(code.publicKey, senderIndex(init));
    hub.send(resp, hub.from[0].port, '127.0.0.1');
    await until(() => c.datagrams(0).length === 1, 'the response on the stream');
    assert.ok(c.datagrams(0)[0].equals(resp));
    c.close();
  });

  test('a join stream opens no relay allocation, even one that exists: closed and counted', async () => {
    const before = main.s.stats().closes['not-owned'];
    await relay.allocate('00000000000b0001', { publicKey: code.publicKey, ip: '127.0.0.1' }, { publicKey: generateKeyPair().publicKey, ip: '127.0.0.1' });
    const c = await joining(main.port);
    await c.waitControl('welcome');
    c.send({ type: 'open', channel: 1, to: { kind: 'allocation', id: '00000000000b0001' } });
    await until(() => c.ended, 'the stream closed');
    assert.match(String(error(c)?.type === 'error' && error(c)!.reason), /only the join tunnel/);
    assert.equal(main.s.stats().closes['not-owned'], before + 1);
    relay.release('00000000000b0001');
  });

  test('a wrong proof is refused before anything is forwarded, with the reason', async () => {
    const before = main.s.stats().closes['bad-auth'];
    const c = await joining(main.port, joinProof(generateKeyPair().privateKey, code.publicKey, hubSettings.publicKey));
    await until(() => c.ended, 'the stream closed');
    assert.equal(c.controls().some((m) => m.type === 'welcome'), false);
    assert.match(String(error(c)?.type === 'error' && error(c)!.reason), /no join code the hub knows/);
    assert.equal(main.s.stats().closes['bad-auth'], before + 1);
  });

  test('a used code is refused with the words the device prints', async () => {
    nodes[0] = { ...nodes[0], enrolUsed: true };
    try {
      const c = await joining(main.port);
      await until(() => c.ended, 'the stream closed');
      assert.match(String(error(c)?.type === 'error' && error(c)!.reason), /already used/);
    } finally {
      nodes[0] = { ...nodes[0], enrolUsed: false };
    }
  });

  test('a relay that takes no joins (a remote relay) refuses them', async () => {
    const plain = await server();
    const c = await joining(plain.port);
    await until(() => c.ended, 'the stream closed');
    assert.match(String(error(c)?.type === 'error' && error(c)!.reason), /takes no joins/);
  });

  test('a join stream is closed when its lifetime is over, and counted', async () => {
    const short = await server(() => ({ ok: true, lifetimeMs: 150 }));
    const c = await joining(short.port);
    await c.waitControl('welcome');
    await until(() => c.ended, 'the stream closed at the end of its lifetime');
    assert.equal(short.s.stats().closes.lifetime, 1);
  });

  test('a hello after a join closes the stream', async () => {
    const c = await joining(main.port);
    await c.waitControl('welcome');
    c.send({ type: 'hello', v: STREAM_VERSION, publicKey: generateKeyPair().publicKey, token: 'x'.repeat(43) });
    await until(() => c.ended, 'the stream closed');
    assert.match(String(error(c)?.type === 'error' && error(c)!.reason), /after the stream was opened/);
  });
});
