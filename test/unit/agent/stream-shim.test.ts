import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { StreamShim, shimStep, BACKOFF_MAX_MS, type ShimPhase } from '../../../src/agent/stream-shim.js';
import { IpAddress } from '../../../src/core/net/address.js';
import { HostPort } from '../../../src/core/net/endpoint.js';
import { proxyFor } from '../../../src/core/stream/connect.js';
import { generateTlsIdentity, type TlsIdentity } from '../../../src/core/stream/tls-identity.js';
import { fakeInitiation, fakeTransport } from '../../../src/lab/fake-wireguard.js';
import { Relay } from '../../../src/relay/relay.js';
import { StreamServer } from '../../../src/relay/stream-server.js';
import { node, silent, sleep, udpPeer, until, type Peer } from '../stream-fixtures.js';

const A = node();
const B = node();
const tokens = new Map([A, B].map((n) => [n.publicKey, n.token]));

let identity: TlsIdentity;
let relay: Relay;
let hub: Peer;
let server: StreamServer;
let port: number;
const shims: StreamShim[] = [];
const sockets: { close(): void }[] = [];

before(async () => {
  identity = await generateTlsIdentity();
  relay = new Relay({ addresses: ['127.0.0.1'], portMin: 46400, portMax: 46440, idleMs: 60_000 });
  hub = await udpPeer();
  server = new StreamServer({
    tls: identity,
    authenticate: (k, t) => tokens.get(k) === t,
    streamSide: (id, k) => relay.streamSide(id, k),
    hub: { endpoint: hub.endpoint, source: IpAddress.parse('127.0.0.1') },
    log: silent,
  });
  port = await server.listen('127.0.0.1', 0);
});

after(async () => {
  shims.forEach((s) => s.stop());
  sockets.forEach((s) => s.close());
  await server.close();
  await relay.close();
  hub.close();
});

/** A shim for node `n`, its WireGuard played by a UDP socket. */
async function shim(o: { transport?: 'tls' | 'websocket'; proxy?: URL | null; pin?: string; relayPort?: number; n?: typeof A } = {}): Promise<{ s: StreamShim; wg: Peer; phases: ShimPhase[] }> {
  const wg = await udpPeer();
  sockets.push(wg);
  const phases: ShimPhase[] = [];
  const n = o.n ?? A;
  const s = new StreamShim({
    relay: HostPort.parse(`127.0.0.1:${o.relayPort ?? port}`),
    trust: { pin: o.pin ?? identity.pin },
    transport: o.transport ?? 'tls',
    proxy: o.proxy ?? null,
    credentials: { publicKey: n.publicKey, token: n.token },
    wireguard: wg.endpoint,
    log: silent,
    onPhase: (p) => phases.push(p),
  });
  shims.push(s);
  return { s, wg, phases };
}

describe('stream shim: what it carries', () => {
  for (const transport of ['tls', 'websocket'] as const) {
    test(`${transport}: WireGuard's hub peer at a local port reaches the hub through the relay, and the hub's answer comes back from that port`, async () => {
      const { s, wg } = await shim({ transport });
      const local = await s.open({ kind: 'hub' });
      assert.equal(local.address.toString(), '127.0.0.1');
      s.start();
      await until(() => s.state.kind === 'up', 'the stream up');
      hub.got.length = 0;
      hub.from.length = 0;
      const init = fakeInitiation(B.publicKey);
      wg.send(init, local.port, '127.0.0.1');
      await until(() => hub.got.length === 1, 'the datagram at the hub');
      assert.ok(hub.got[0].equals(init));
      for (let i = 0; i < 5; i++) hub.send(fakeTransport(1400), hub.from[0].port, '127.0.0.1');
      await until(() => wg.got.length === 5, "the hub's datagrams at WireGuard");
      assert.deepEqual(wg.from[0], { address: '127.0.0.1', port: local.port }, 'from the port WireGuard sent to, so its endpoint for the peer never moves');
      s.stop();
    });
  }

  test('only the local WireGuard may send through the shim', async () => {
    const { s } = await shim();
    const local = await s.open({ kind: 'hub' });
    s.start();
    await until(() => s.state.kind === 'up', 'the stream up');
    const other = await udpPeer();
    sockets.push(other);
    hub.got.length = 0;
    other.send(fakeTransport(100), local.port, '127.0.0.1');
    await sleep(100);
    assert.equal(hub.got.length, 0);
    assert.equal(s.counters.up.packets, 0);
    s.stop();
  });

  test('through an HTTP proxy with CONNECT (HTTPS_PROXY)', async () => {
    const connects: string[] = [];
    const proxy: Server = createHttpServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req, client: Socket, head: Buffer) => {
      connects.push(req.url ?? '');
      const [host, p] = (req.url ?? '').split(':');
      const up = netConnect({ host, port: Number(p) }, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length) up.write(head);
        up.pipe(client);
        client.pipe(up);
      });
      up.on('error', () => client.destroy());
      client.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const proxyUrl = proxyFor(HostPort.parse(`127.0.0.1:${port}`), { HTTPS_PROXY: `http://127.0.0.1:${(proxy.address() as { port: number }).port}` });
    assert.ok(proxyUrl);
    const { s, wg } = await shim({ proxy: proxyUrl, transport: 'websocket' });
    const local = await s.open({ kind: 'hub' });
    s.start();
    await until(() => s.state.kind === 'up', 'the stream up through the proxy');
    assert.deepEqual(connects, [`127.0.0.1:${port}`]);
    hub.got.length = 0;
    wg.send(fakeTransport(200), local.port, '127.0.0.1');
    await until(() => hub.got.length === 1, 'the datagram at the hub');
    s.stop();
    proxy.closeAllConnections();
    proxy.close();
  });

  test('a relay allocation: the shim opens its channel again on every connection, and its local port stays the same', async () => {
    const id = '00000000000000b1';
    const b = await udpPeer('127.0.0.2');
    sockets.push(b);
    const { portB } = await relay.allocate(id, { publicKey: A.publicKey, ip: '127.0.0.1' }, { publicKey: B.publicKey, ip: '127.0.0.2' });
    const { s, wg, phases } = await shim();
    const local = await s.open({ kind: 'allocation', id });
    s.start();
    await until(() => s.state.kind === 'up', 'the stream up');
    wg.send(fakeInitiation(B.publicKey), local.port, '127.0.0.1');
    await sleep(30);
    b.send(fakeInitiation(A.publicKey), portB, '127.0.0.1');
    await until(() => wg.got.length === 1, "B's initiation at A's WireGuard");
    // The relay drops the stream (a newer one of the same node replaces it): the shim reconnects.
    const { s: intruder } = await shim();
    intruder.start();
    await until(() => phases.some((p) => p.kind === 'backoff'), 'the first shim noticed');
    intruder.stop();
    await until(() => s.state.kind === 'up', 'the first shim up again');
    b.send(fakeInitiation(A.publicKey), portB, '127.0.0.1');
    await until(() => wg.got.length === 2, "B's next initiation at the same local port");
    assert.equal(wg.from[1].port, local.port);
    relay.release(id);
    s.stop();
  });
});

describe('stream shim: refusals', () => {
  test('a wrong pin is a refusal retrying does not fix: the longest backoff, and the reason names both keys', async () => {
    const other = await generateTlsIdentity();
    const { s, phases } = await shim({ pin: other.pin });
    s.start();
    await until(() => phases.some((p) => p.kind === 'backoff'), 'refused');
    const p = phases.find((x) => x.kind === 'backoff');
    assert.ok(p && p.kind === 'backoff');
    assert.equal(p.retryInMs, BACKOFF_MAX_MS);
    assert.match(p.reason, /not the pinned one/);
    assert.ok(p.reason.includes(identity.pin) && p.reason.includes(other.pin));
    s.stop();
  });

  test('a wrong token is refused by the relay with its reason', async () => {
    const { s, phases } = await shim({ n: { publicKey: A.publicKey, token: B.token } });
    s.start();
    await until(() => phases.some((p) => p.kind === 'backoff'), 'refused');
    const p = phases.find((x) => x.kind === 'backoff');
    assert.ok(p && p.kind === 'backoff');
    assert.match(p.reason, /public key and token/);
    s.stop();
  });

  test('NO_PROXY exempts the relay; a proxy that is not http is refused by name', () => {
    const relayHp = HostPort.parse('relay.example.org:443');
    assert.equal(proxyFor(relayHp, { HTTPS_PROXY: 'http://proxy:3128', NO_PROXY: '.example.org' }), undefined);
    assert.equal(proxyFor(relayHp, { https_proxy: 'proxy:3128' })?.host, 'proxy:3128');
    assert.throws(() => proxyFor(relayHp, { HTTPS_PROXY: 'socks5://proxy:1080' }), /only http:\/\/ proxies/);
  });
});

describe('shim phases', () => {
  test('backoff doubles from 250 ms to 10 s, starts afresh after being up, and a permanent refusal waits the longest', () => {
    let p: ShimPhase = shimStep({ kind: 'idle' }, { kind: 'start' });
    const waits: number[] = [];
    for (let i = 0; i < 8; i++) {
      p = shimStep(p, { kind: 'failed', reason: 'x', permanent: false });
      assert.equal(p.kind, 'backoff');
      if (p.kind === 'backoff') waits.push(p.retryInMs);
      p = shimStep(p, { kind: 'retry' });
    }
    assert.deepEqual(waits, [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    p = shimStep(shimStep(p, { kind: 'connected' }), { kind: 'welcome', now: 5 });
    assert.deepEqual(p, { kind: 'up', since: 5 });
    const again = shimStep(p, { kind: 'failed', reason: 'x', permanent: false });
    assert.equal(again.kind === 'backoff' && again.retryInMs, 250);
    const refused = shimStep({ kind: 'connecting', attempt: 0 }, { kind: 'failed', reason: 'pin', permanent: true });
    assert.equal(refused.kind === 'backoff' && refused.retryInMs, BACKOFF_MAX_MS);
    assert.deepEqual(shimStep({ kind: 'stopped' }, { kind: 'start' }), { kind: 'stopped' });
  });
});
