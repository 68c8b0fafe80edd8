import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { IpAddress } from '../../../src/core/net/address.js';
import { HostPort } from '../../../src/core/net/endpoint.js';
import { connectStream, StreamConnectError } from '../../../src/core/stream/connect.js';
import { encodeControl, encodeData } from '../../../src/core/stream/framing.js';
import { STREAM_VERSION } from '../../../src/core/stream/messages.js';
import { generateTlsIdentity, type TlsIdentity } from '../../../src/core/stream/tls-identity.js';
import { fakeInitiation, fakeResponse, fakeTransport, senderIndex } from '../../../src/lab/fake-wireguard.js';
import { Relay } from '../../../src/relay/relay.js';
import { sessionStep } from '../../../src/relay/stream-session.js';
import { StreamServer, type StreamLimits } from '../../../src/relay/stream-server.js';
import { node, RawClient, silent, sleep, udpPeer, until, type Node, type Peer } from '../stream-fixtures.js';

const A = node();
const B = node();
const C = node();
const tokens = new Map([A, B, C].map((n) => [n.publicKey, n.token]));

let identity: TlsIdentity;
let relay: Relay;
let hub: Peer;
const servers: StreamServer[] = [];
const clients: RawClient[] = [];
let allocations = 0;
const nextId = () => (0xa000 + allocations++).toString(16).padStart(16, '0');

async function server(limits: Partial<StreamLimits> = {}): Promise<{ s: StreamServer; port: number }> {
  const s = new StreamServer({
    tls: identity,
    authenticate: (k, t) => tokens.get(k) === t,
    streamSide: (id, k) => relay.streamSide(id, k),
    hub: { endpoint: hub.endpoint, source: IpAddress.parse('127.0.0.1') },
    limits: { helloDeadlineMs: 1500, ...limits },
    log: silent,
  });
  servers.push(s);
  return { s, port: await s.listen('127.0.0.1', 0) };
}

async function client(port: number, n?: Node, transport: 'tls' | 'websocket' = 'tls'): Promise<RawClient> {
  const c = await RawClient.connect(port, identity.pin, transport);
  clients.push(c);
  if (n) {
    c.hello(n);
    await c.waitControl('welcome');
  }
  return c;
}

let main: { s: StreamServer; port: number };

before(async () => {
  identity = await generateTlsIdentity();
  relay = new Relay({ addresses: ['127.0.0.1'], portMin: 46300, portMax: 46360, idleMs: 60_000 });
  hub = await udpPeer('127.0.0.1');
  main = await server();
});

after(async () => {
  clients.forEach((c) => c.close());
  await Promise.all(servers.map((s) => s.close()));
  await relay.close();
  hub.close();
});

describe('relay stream side: what it carries', () => {
  for (const transport of ['tls', 'websocket'] as const) {
    test(`${transport}: a node's hub channel reaches the hub's WireGuard from loopback, and the hub's answer comes back on it`, async () => {
      const c = await client(main.port, A, transport);
      c.send({ type: 'open', channel: 0, to: { kind: 'hub' } });
      await c.waitControl('opened');
      hub.got.length = 0;
      hub.from.length = 0;
      const init = fakeInitiation(B.publicKey);
      c.data(0, init);
      await until(() => hub.got.length === 1, 'the initiation at the hub');
      assert.ok(hub.got[0].equals(init));
      assert.equal(hub.from[0].address, '127.0.0.1');
      const answer = fakeResponse(A.publicKey, senderIndex(init));
      hub.send(answer, hub.from[0].port, '127.0.0.1');
      await until(() => c.datagrams(0).length === 1, 'the answer on the stream');
      assert.ok(c.datagrams(0)[0].equals(answer));
      c.close();
    });
  }

  test('a stream side and a UDP side of one allocation latch by handshake and forward both ways; the pair stays in userspace', async () => {
    const id = nextId();
    const b = await udpPeer('127.0.0.2');
    const { portB } = await relay.allocate(id, { publicKey: A.publicKey, ip: '127.0.0.1' }, { publicKey: B.publicKey, ip: '127.0.0.2' });
    const c = await client(main.port, A);
    c.send({ type: 'open', channel: 7, to: { kind: 'allocation', id } });
    await c.waitControl('opened');
    c.data(7, fakeInitiation(B.publicKey)); // A's side becomes a candidate; B has no port yet
    await sleep(30);
    const ib = fakeInitiation(A.publicKey);
    b.send(ib, portB, '127.0.0.1');
    await until(() => c.datagrams(7).length === 1, "B's initiation reaching A's stream");
    assert.ok(c.datagrams(7)[0].equals(ib));
    c.data(7, fakeResponse(B.publicKey, senderIndex(ib)));
    await until(() => b.got.length === 1, "A's response at B");
    for (let i = 0; i < 20; i++) c.data(7, fakeTransport(1400));
    for (let i = 0; i < 5; i++) b.send(fakeTransport(200), portB, '127.0.0.1');
    await until(() => b.got.length === 21 && c.datagrams(7).length === 6, 'transport both ways');
    const st = (await relay.stats()).find((x) => x.id === id);
    assert.ok(st);
    assert.match(st.a.latched ?? '', /^127\.0\.0\.1:\d+$/);
    assert.equal(st.b.latched, `127.0.0.2:${b.port}`);
    assert.equal(st.kernel, false);
    relay.release(id);
    b.close();
    c.close();
  });

  test('two stream sides of one allocation forward to each other', async () => {
    const id = nextId();
    await relay.allocate(id, { publicKey: A.publicKey, ip: '127.0.0.1' }, { publicKey: C.publicKey, ip: '127.0.0.1' });
    const a = await client(main.port, A);
    const c = await client(main.port, C, 'websocket');
    a.send({ type: 'open', channel: 1, to: { kind: 'allocation', id } });
    c.send({ type: 'open', channel: 2, to: { kind: 'allocation', id } });
    await a.waitControl('opened');
    await c.waitControl('opened');
    a.data(1, fakeInitiation(C.publicKey));
    await sleep(30);
    const ic = fakeInitiation(A.publicKey);
    c.data(2, ic);
    await until(() => a.datagrams(1).length === 1, "C's initiation at A");
    a.data(1, fakeResponse(C.publicKey, senderIndex(ic)));
    await until(() => c.datagrams(2).length === 1, "A's response at C");
    for (let i = 0; i < 10; i++) a.data(1, fakeTransport(1400));
    await until(() => c.datagrams(2).length === 11, 'transport from A to C');
    relay.release(id);
    // The release reaches the channels: the shims are told, and a datagram sent before they
    // read it is dropped, not taken for a channel never opened.
    main.s.released(id);
    await a.waitControl('closed');
    a.data(1, fakeTransport(100));
    await sleep(50);
    assert.equal(a.ended, false);
    a.close();
    c.close();
  });

  test("a node cannot open another pair's allocation: the stream is closed and counted", async () => {
    const id = nextId();
    await relay.allocate(id, { publicKey: B.publicKey, ip: '127.0.0.1' }, { publicKey: C.publicKey, ip: '127.0.0.1' });
    const before = main.s.stats().closes['not-owned'];
    const a = await client(main.port, A);
    a.send({ type: 'open', channel: 1, to: { kind: 'allocation', id } });
    await until(() => a.ended, 'the stream closed');
    assert.equal(main.s.stats().closes['not-owned'], before + 1);
    assert.match((a.controls().find((m) => m.type === 'error') as { reason: string } | undefined)?.reason ?? '', /not this node's/);
    relay.release(id);
  });

  test("a side allocated for UDP is refused for a stream (its node IP is the node's, not loopback)", async () => {
    const id = nextId();
    await relay.allocate(id, { publicKey: A.publicKey, ip: '192.0.2.10' }, { publicKey: B.publicKey, ip: '127.0.0.1' });
    assert.deepEqual(relay.streamSide(id, A.publicKey), { kind: 'not-stream' });
    assert.equal(relay.streamSide(id, B.publicKey).kind, 'ok');
    relay.release(id);
    assert.deepEqual(relay.streamSide(id, A.publicKey), { kind: 'unknown' });
  });

  test("a node that reconnects reaches the hub and the relay from the same port, so what they latched stays valid", async () => {
    const ports: number[] = [];
    for (let i = 0; i < 2; i++) {
      const c = await client(main.port, A, i === 0 ? 'tls' : 'websocket');
      c.send({ type: 'open', channel: i, to: { kind: 'hub' } });
      hub.from.length = 0;
      c.data(i, fakeTransport(64));
      await until(() => hub.from.length === 1, 'the datagram at the hub');
      ports.push(hub.from[0].port);
      c.close();
      await until(() => main.s.stats().nodes === 0, 'the stream gone');
    }
    assert.equal(ports[1], ports[0]);
  });

  test('a newer stream of the same node replaces the older one', async () => {
    const first = await client(main.port, A);
    const before = main.s.stats().closes.replaced;
    const second = await client(main.port, A);
    await until(() => first.ended, 'the first stream closed');
    assert.equal(second.ended, false);
    assert.equal(main.s.stats().closes.replaced, before + 1);
    second.close();
  });
});

describe('relay stream side: bad input and abuse', () => {
  test('an unauthenticated connection is closed by the deadline, TLS done or not, and counted', async () => {
    const { s, port } = await server({ helloDeadlineMs: 200 });
    const quiet = await client(port); // TLS done, no hello
    const raw = netConnect({ port, host: '127.0.0.1' }); // TCP only, no TLS
    let rawClosed = false;
    raw.on('close', () => (rawClosed = true));
    raw.on('error', () => undefined);
    await until(() => quiet.ended && rawClosed, 'both closed', 2000);
    await until(() => s.stats().closes['auth-timeout'] + s.stats().closes['tls-failed'] >= 2, 'both counted');
    assert.equal(s.stats().connections, 0);
  });

  test('a wrong token, or anything but a hello first, is refused with the reason and counted', async () => {
    const before = main.s.stats().closes['bad-auth'];
    const wrong = await client(main.port);
    wrong.hello({ publicKey: A.publicKey, token: B.token });
    await until(() => wrong.ended, 'closed');
    assert.match((wrong.controls()[0] as { reason: string }).reason, /public key and token/);
    const early = await client(main.port);
    early.data(0, fakeTransport(100));
    await until(() => early.ended, 'closed');
    assert.equal(main.s.stats().closes['bad-auth'], before + 2);
  });

  test('garbage, an oversized frame, a bad control message and a channel never opened each close the stream, counted by kind', async () => {
    const before = main.s.stats().closes;
    const garbage = await client(main.port, A);
    garbage.pipe.write(Buffer.from([0, 2, 0x09, 0]));
    const oversized = await client(main.port, B);
    oversized.pipe.write(Buffer.from([0xff, 0xf0]));
    const badMessage = await client(main.port, C);
    badMessage.pipe.write(encodeControl('{"type":"open","channel":-1}'));
    await until(() => garbage.ended && oversized.ended && badMessage.ended, 'all three closed');
    const unopened = await client(main.port, A);
    unopened.data(5, fakeTransport(100));
    await until(() => unopened.ended, 'closed');
    const after = main.s.stats().closes;
    assert.equal(after.garbage, before.garbage + 2);
    assert.equal(after.oversized, before.oversized + 1);
    assert.equal(after['not-owned'], before['not-owned'] + 1);
  });

  test('connections beyond the limit per source are closed at once, counted, and the others still work', async () => {
    const { s, port } = await server({ perSource: 3, helloDeadlineMs: 2000 });
    const held = await Promise.all([1, 2, 3].map(() => client(port)));
    const extra = netConnect({ port, host: '127.0.0.1' });
    let closed = false;
    extra.on('close', () => (closed = true));
    extra.on('error', () => undefined);
    await until(() => closed, 'the extra connection closed');
    assert.equal(s.stats().closes['source-limit'], 1);
    held[0].hello(A);
    await held[0].waitControl('welcome');
    held.forEach((c) => c.close());
  });

  test('slowloris: a TLS handshake or an HTTP upgrade trickled byte by byte is cut off at the deadline', async () => {
    const { s, port } = await server({ helloDeadlineMs: 300 });
    // A ClientHello that never finishes.
    const tlsTrickle = netConnect({ port, host: '127.0.0.1' });
    tlsTrickle.on('error', () => undefined);
    const timer = setInterval(() => tlsTrickle.write(Buffer.from([0x16])), 50);
    // TLS done, then HTTP headers one byte at a time.
    const tls = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
    tls.on('error', () => undefined);
    await new Promise((r) => tls.once('secureConnect', r));
    const headers = 'GET /v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n';
    let i = 0;
    const timer2 = setInterval(() => i < headers.length && tls.write(headers[i++]), 50);
    let closed = 0;
    tlsTrickle.on('close', () => closed++);
    tls.on('close', () => closed++);
    await until(() => closed === 2, 'both trickles cut off', 2000);
    clearInterval(timer);
    clearInterval(timer2);
    assert.equal(s.stats().connections, 0);
  });

  test('a stalled stream loses only its own datagrams (counted), is closed after the stall limit, and never holds up UDP pairs', async () => {
    const { s, port } = await server({ maxQueued: 64 * 1024, stallMs: 300 });
    // A node that authenticates, opens its hub channel and then never reads again.
    const tls = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
    tls.on('error', () => undefined);
    await new Promise((r) => tls.once('secureConnect', r));
    tls.write(encodeControl(JSON.stringify({ type: 'hello', v: STREAM_VERSION, publicKey: A.publicKey, token: A.token })));
    tls.write(encodeControl(JSON.stringify({ type: 'open', channel: 0, to: { kind: 'hub' } })));
    hub.got.length = 0;
    hub.from.length = 0;
    tls.write(encodeData(0, fakeTransport(100)));
    await until(() => hub.got.length === 1, 'the stalled node reached the hub once');
    tls.pause();
    // A UDP pair on the same relay, confirmed.
    const id = nextId();
    const x = await udpPeer('127.0.0.2');
    const y = await udpPeer('127.0.0.3');
    const { portA, portB } = await relay.allocate(id, { publicKey: B.publicKey, ip: '127.0.0.2' }, { publicKey: C.publicKey, ip: '127.0.0.3' });
    x.send(fakeInitiation(C.publicKey), portA, '127.0.0.1');
    await sleep(20);
    const iy = fakeInitiation(B.publicKey);
    y.send(iy, portB, '127.0.0.1');
    await until(() => x.got.length === 1, 'initiation at x');
    x.send(fakeResponse(C.publicKey, senderIndex(iy)), portA, '127.0.0.1');
    await until(() => y.got.length === 1, 'response at y');
    // Flood the stalled node with more than loopback's TCP buffers hold (about 4 MB here),
    // interleaved with the pair's traffic.
    const flood = fakeTransport(1400);
    for (let round = 0; round < 150; round++) {
      for (let i = 0; i < 50; i++) hub.send(flood, hub.from[0].port, '127.0.0.1');
      if (round % 5 === 0) for (let i = 0; i < 5; i++) x.send(fakeTransport(300), portA, '127.0.0.1');
      await sleep(round % 10 === 0 ? 2 : 0);
    }
    await until(() => y.got.length === 1 + 150, 'every datagram of the UDP pair forwarded');
    await until(() => s.stats().dropped > 0, 'datagrams for the stalled node dropped');
    // The client reads nothing, so it cannot see the close: the relay's count and its connections say it.
    await until(() => s.stats().closes.stalled === 1, 'the stalled stream closed', 3000);
    assert.equal(s.stats().nodes, 0);
    tls.destroy();
    relay.release(id);
    x.close();
    y.close();
  });

  test('a certificate that is not the pinned one is refused before anything is sent, with the reason', async () => {
    const other = await generateTlsIdentity();
    await assert.rejects(
      connectStream({ relay: HostPort.parse(`127.0.0.1:${main.port}`), trust: { pin: other.pin }, transport: 'tls' }),
      (err: unknown) => err instanceof StreamConnectError && err.permanent && /not the pinned one/.test(err.message) && err.message.includes(identity.pin),
    );
  });
});

describe('stream session phases', () => {
  test('only hello-wait authenticates; a closed session keeps its first reason', () => {
    const open = sessionStep({ kind: 'hello-wait' }, { kind: 'authenticated', publicKey: A.publicKey, scope: 'node' });
    assert.deepEqual(open, { kind: 'open', publicKey: A.publicKey, scope: 'node' });
    assert.deepEqual(sessionStep(open, { kind: 'authenticated', publicKey: B.publicKey, scope: 'node' }), open);
    const closed = sessionStep(open, { kind: 'close', reason: 'garbage' });
    assert.deepEqual(sessionStep(closed, { kind: 'close', reason: 'ended' }), { kind: 'closed', reason: 'garbage' });
    assert.deepEqual(sessionStep(closed, { kind: 'authenticated', publicKey: A.publicKey, scope: 'node' }), closed);
  });
});
