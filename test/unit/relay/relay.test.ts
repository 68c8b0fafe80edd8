import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { after, afterEach, before, test } from 'node:test';
import { IpAddress } from '../../../src/core/net/address.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { fakeCookieReply, fakeInitiation, fakeResponse, fakeTransport, senderIndex } from '../../../src/lab/fake-wireguard.js';
import { Relay, type AllocationStats } from '../../../src/relay/relay.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const NODE_IP = '127.0.0.1';
const transport = (n = 1400) => fakeTransport(n);

type Peer = Socket & { got: Buffer[]; port: number };

function socket(address = NODE_IP): Promise<Peer> {
  return new Promise((resolve) => {
    const s = createSocket(IpAddress.parse(address).family === 6 ? 'udp6' : 'udp4') as Peer;
    s.got = [];
    s.on('message', (m) => s.got.push(m));
    s.bind(0, address, () => {
      s.port = s.address().port;
      resolve(s);
    });
  });
}

const A = generateKeyPair().publicKey;
const B = generateKeyPair().publicKey;
let relay: Relay;
const latched: string[] = [];
const released: string[] = [];
const open: Socket[] = [];
let bystanders: Peer[] = [];

before(async () => {
  relay = new Relay({
    address: NODE_IP,
    portMin: 46000,
    portMax: 46100,
    idleMs: 600,
    onLatched: (id, key, endpoint) => latched.push(`${id} ${key === A ? 'A' : key === B ? 'B' : '?'} ${endpoint}`),
    onReleased: (id, reason) => released.push(`${id} ${reason}`),
  });
  // Sockets nobody has any business sending to: one on the nodes' IP, one on another.
  bystanders = [await socket(NODE_IP), await socket('127.0.0.3')];
  open.push(...bystanders);
});
afterEach(() => assert.deepEqual(bystanders.map((s) => s.got.length), [0, 0], 'a bystander received something'));
after(async () => {
  open.forEach((s) => s.close());
  await relay.close();
});

async function peers(n: number, address = NODE_IP): Promise<Peer[]> {
  const xs = await Promise.all(Array.from({ length: n }, () => socket(address)));
  open.push(...xs);
  return xs;
}

async function stat(id: string): Promise<AllocationStats> {
  const st = (await relay.stats()).find((x) => x.id === id);
  assert.ok(st, `no allocation ${id}`);
  return st;
}

/**
 * The handshake as two WireGuards make it through a fresh allocation: A's first initiation finds
 * nobody to go to, B's reaches A's candidate port, A answers it, which confirms both.
 */
async function confirm(id: string): Promise<{ portA: number; portB: number; a: Peer; b: Peer }> {
  const { portA, portB } = await relay.allocate(id, { publicKey: A, ip: NODE_IP }, { publicKey: B, ip: NODE_IP });
  const [a, b] = await peers(2);
  a.send(fakeInitiation(B), portA, NODE_IP);
  await sleep(30);
  const ib = fakeInitiation(A);
  b.send(ib, portB, NODE_IP);
  await sleep(30);
  assert.deepEqual(a.got, [ib], "B's initiation went to A's candidate port");
  a.send(fakeResponse(B, senderIndex(ib)), portA, NODE_IP);
  await sleep(30);
  assert.equal(b.got.length, 1, "A's response reached B");
  a.got.length = 0;
  b.got.length = 0;
  return { portA, portB, a, b };
}

test('confirms both sides from an answered handshake, then forwards and counts per direction', async () => {
  latched.length = 0;
  const { portA, portB, a, b } = await confirm('p1');
  assert.deepEqual(latched, [`p1 B 127.0.0.1:${b.port}`, `p1 A 127.0.0.1:${a.port}`]);
  for (let i = 0; i < 10; i++) a.send(transport(), portA, NODE_IP);
  for (let i = 0; i < 3; i++) b.send(transport(200), portB, NODE_IP);
  await sleep(100);
  assert.equal(b.got.length, 10);
  assert.equal(a.got.length, 3);
  const st = await stat('p1');
  assert.equal(st.a.latched, `127.0.0.1:${a.port}`);
  assert.equal(st.b.latched, `127.0.0.1:${b.port}`);
  assert.deepEqual(st.aToB, { packets: 1 + 10, bytes: 92 + 10 * 1400 }, 'the response, then the data');
  assert.deepEqual(st.bToA, { packets: 1 + 3, bytes: 148 + 3 * 200 }, "B's initiation, then the data");
  assert.deepEqual(st.dropped, { malformed: 0, wrongSource: 0, badMac1: 0, unconfirmed: 0, unknownIndex: 0, replayed: 0, noDestination: 1, notLatched: 1 });
  relay.release('p1');
});

test('nothing passes before a side is confirmed: transport, unanswered initiations, foreign responses', async () => {
  const { portA, portB } = await relay.allocate('p2', { publicKey: A, ip: NODE_IP }, { publicKey: B, ip: NODE_IP });
  const [a, b] = await peers(2);
  for (let i = 0; i < 4; i++) a.send(transport(), portA, NODE_IP); // no port is confirmed yet
  const ia = fakeInitiation(B);
  a.send(ia, portA, NODE_IP); // a candidate; B has no address: nowhere to go
  await sleep(30);
  for (let i = 0; i < 3; i++) a.send(transport(), portA, NODE_IP); // a candidate is not confirmed
  b.send(fakeResponse(A, senderIndex(ia) ^ 1), portB, NODE_IP); // names no initiation
  b.send(fakeCookieReply(senderIndex(ia) ^ 1), portB, NODE_IP);
  b.send(fakeResponse(B, senderIndex(ia)), portB, NODE_IP); // right index, mac1 for the wrong initiator
  await sleep(50);
  assert.equal(a.got.length + b.got.length, 0);
  const st = await stat('p2');
  assert.equal(st.a.latched, null);
  assert.equal(st.b.latched, null);
  assert.deepEqual(st.a.candidates, [`127.0.0.1:${a.port}`]);
  assert.deepEqual(st.dropped, { malformed: 0, wrongSource: 0, badMac1: 1, unconfirmed: 7, unknownIndex: 2, replayed: 0, noDestination: 1, notLatched: 8 });
  relay.release('p2');
});

test('abuse: garbage of many lengths, foreign sources, unconfirmed ports are dropped and counted; it keeps forwarding', async () => {
  const { portA, portB, a, b } = await confirm('p3');
  const [sameIp] = await peers(1); // the node's IP, another port
  const [intruder] = await peers(1, '127.0.0.2'); // an address no allocation has
  let garbage = 0;
  for (let len = 0; len <= 200; len++) {
    const g = randomBytes(len);
    if (len >= 4) g[1] = 1 + (len % 255); // reserved bytes not zero: never a WireGuard message
    a.send(g, portA, NODE_IP);
    garbage++;
  }
  // The right type byte with a wrong length is garbage too (transport must be >= 32 bytes).
  for (const [type, len] of [[1, 147], [1, 149], [2, 91], [2, 93], [3, 63], [3, 65], [4, 31], [4, 4], [5, 148], [0, 64]]) {
    const g = Buffer.concat([Buffer.from([type, 0, 0, 0]), randomBytes(len - 4)]);
    b.send(g, portB, NODE_IP);
    garbage++;
  }
  for (let i = 0; i < 20; i++) intruder.send(transport(), portA, NODE_IP);
  intruder.send(fakeInitiation(B), portA, NODE_IP); // a valid handshake, but from an address outside the allocation
  intruder.send(fakeResponse(A, 1), portB, NODE_IP);
  for (let i = 0; i < 5; i++) sameIp.send(transport(), portA, NODE_IP); // data from an unconfirmed port
  sameIp.send(fakeInitiation(A), portA, NODE_IP); // mac1 made for the wrong responder
  await sleep(150);
  assert.equal(a.got.length + b.got.length + sameIp.got.length + intruder.got.length, 0, 'nothing was forwarded anywhere');
  const st = await stat('p3');
  assert.deepEqual(st.dropped, { malformed: garbage, wrongSource: 22, badMac1: 1, unconfirmed: 5, unknownIndex: 0, replayed: 0, noDestination: 1, notLatched: 6 });
  assert.equal(st.a.latched, `127.0.0.1:${a.port}`, 'the allocation still belongs to A');
  a.send(transport(), portA, NODE_IP);
  b.send(transport(), portB, NODE_IP);
  await sleep(50);
  assert.deepEqual([a.got.length, b.got.length], [1, 1], 'and still forwards both ways');
  relay.release('p3');
});

test('a spoofed initiation with a valid mac1, or a replayed genuine one, from another port cannot take a side over', async () => {
  const { portA, portB, a, b } = await confirm('p4');
  latched.length = 0;
  const [spoofer] = await peers(1); // the node's IP (spoofed), another port
  // A forged initiation: mac1 needs only B's public key. It reaches B, whose WireGuard cannot
  // decrypt it and never answers, so the spoofer's port stays a candidate.
  spoofer.send(fakeInitiation(B), portA, NODE_IP);
  await sleep(30);
  assert.equal(b.got.length, 1, 'forwarded to B like any initiation');
  for (let i = 0; i < 5; i++) spoofer.send(transport(), portA, NODE_IP);
  for (let i = 0; i < 5; i++) b.send(transport(), portB, NODE_IP);
  await sleep(50);
  assert.equal(a.got.length, 5, "B's data still reaches the real A");
  assert.equal(spoofer.got.length, 0);

  // A re-handshakes from its real port; the spoofer replays that initiation from its own port
  // before B answers. B's answer must go to A's real port, and A stays there.
  const genuine = fakeInitiation(B);
  a.send(genuine, portA, NODE_IP);
  await sleep(20);
  spoofer.send(genuine, portA, NODE_IP);
  await sleep(20);
  b.send(fakeResponse(A, senderIndex(genuine)), portB, NODE_IP);
  await sleep(30);
  assert.equal(a.got.length, 6, 'the response went to the real A');
  // The same initiation replayed again after it was answered: a fresh candidate at the spoofer's
  // port, which B (a real WireGuard rejects replays) never answers.
  spoofer.send(genuine, portA, NODE_IP);
  await sleep(20);
  // A cookie reply naming the spoofer's candidate goes to that candidate and confirms nothing.
  b.send(fakeCookieReply(senderIndex(genuine)), portB, NODE_IP);
  await sleep(20);
  assert.equal(spoofer.got.length, 1);
  assert.equal(spoofer.got[0][0], 3);
  for (let i = 0; i < 5; i++) b.send(transport(), portB, NODE_IP);
  for (let i = 0; i < 5; i++) a.send(transport(), portA, NODE_IP);
  await sleep(50);
  assert.equal(a.got.length, 11, "B's data still reaches the real A");
  assert.equal(spoofer.got.length, 1);
  const st = await stat('p4');
  assert.equal(st.a.latched, `127.0.0.1:${a.port}`);
  assert.equal(st.b.latched, `127.0.0.1:${b.port}`);
  assert.deepEqual(st.dropped, { malformed: 0, wrongSource: 0, badMac1: 0, unconfirmed: 5, unknownIndex: 0, replayed: 1, noDestination: 1, notLatched: 6 });
  assert.deepEqual(latched, [], 'no side moved');
  relay.release('p4');
});

test('roaming inside one NAT: a handshake from a new port that the other side answers moves the side', async () => {
  const { portA, portB, a, b } = await confirm('p5');
  latched.length = 0;
  const [a2] = await peers(1); // A's NAT gave it a new port
  a2.send(transport(), portA, NODE_IP); // WireGuard first sends data from the new port: dropped
  const ia = fakeInitiation(B);
  a2.send(ia, portA, NODE_IP); // then re-handshakes
  await sleep(30);
  b.send(transport(), portB, NODE_IP); // until B answers, A is still where it was
  await sleep(30);
  assert.equal(a.got.length, 1);
  b.send(fakeResponse(A, senderIndex(ia)), portB, NODE_IP);
  await sleep(30);
  assert.deepEqual(latched, [`p5 A 127.0.0.1:${a2.port}`]);
  b.send(transport(), portB, NODE_IP);
  a.send(transport(), portA, NODE_IP); // the old port is no longer A's
  a2.send(transport(), portA, NODE_IP);
  await sleep(50);
  assert.equal(a2.got.length, 2, 'the response and the data reach A at its new port');
  assert.equal(a.got.length, 1, 'and no longer the old one');
  assert.equal(b.got.length, 2, "B got A's initiation and its data from the new port, not the old one's");
  const st = await stat('p5');
  assert.equal(st.a.latched, `127.0.0.1:${a2.port}`);
  assert.deepEqual([st.dropped.unconfirmed, st.dropped.unknownIndex], [2, 0]);
  // The answered initiation is spent: the same response again names nothing.
  b.send(fakeResponse(A, senderIndex(ia)), portB, NODE_IP);
  await sleep(30);
  assert.equal((await stat('p5')).dropped.unknownIndex, 1);
  assert.equal(a2.got.length, 2);
  relay.release('p5');
});

test('a released allocation forwards nothing; an idle one expires and says so', async () => {
  released.length = 0;
  const r1 = await confirm('p6');
  assert.equal(relay.release('p6'), true);
  assert.equal(relay.release('p6'), false);
  assert.equal(relay.has('p6'), false);
  r1.a.send(transport(), r1.portA, NODE_IP);
  r1.b.send(transport(), r1.portB, NODE_IP);
  r1.a.send(fakeInitiation(B), r1.portA, NODE_IP);
  await sleep(50);
  assert.equal(r1.a.got.length + r1.b.got.length, 0);
  assert.deepEqual(released, ['p6 released']);

  const r2 = await confirm('p7');
  r2.a.send(transport(), r2.portA, NODE_IP);
  await sleep(50);
  assert.equal(r2.b.got.length, 1);
  await sleep(1500); // idleMs is 600; the sweeper looks every 300 ms
  assert.equal(relay.has('p7'), false);
  assert.deepEqual(released, ['p6 released', 'p7 idle']);
  assert.equal((await relay.stats()).some((x) => x.id === 'p7'), false);

  // After all of the above, a fresh pair still works.
  const r3 = await confirm('p8');
  r3.b.send(transport(), r3.portB, NODE_IP);
  await sleep(50);
  assert.equal(r3.a.got.length, 1);
  relay.release('p8');
});

test('a node that changed IP is confirmed again; datagrams from its old IP are foreign', async () => {
  const { portA, portB, a, b } = await confirm('p9');
  const [a2] = await peers(1, '127.0.0.4');
  relay.updateIp('p9', A, '127.0.0.4');
  assert.equal((await stat('p9')).a.latched, null);
  a.send(transport(), portA, NODE_IP);
  b.send(transport(), portB, NODE_IP); // A has no confirmed port: dropped
  const ia = fakeInitiation(B);
  a2.send(ia, portA, NODE_IP);
  await sleep(30);
  b.send(fakeResponse(A, senderIndex(ia)), portB, NODE_IP);
  await sleep(30);
  b.send(transport(), portB, NODE_IP);
  await sleep(30);
  assert.equal(a.got.length, 0);
  assert.equal(a2.got.length, 2);
  const st = await stat('p9');
  assert.equal(st.a.latched, `127.0.0.4:${a2.port}`);
  assert.deepEqual([st.dropped.wrongSource, st.dropped.unconfirmed], [1, 1]);
  relay.release('p9');
});

/** `ip -6 addr show lo` lists ::1 here; where IPv6 is off (a container without it), these tests skip. */
const HAS_V6_LOOPBACK = await new Promise<boolean>((resolve) => {
  const s = createSocket('udp6');
  s.once('error', () => resolve(false));
  s.bind(0, '::1', () => {
    s.close();
    resolve(true);
  });
});

/** The handshake of confirm(), on any relay and addresses. */
async function confirmOn(r: Relay, id: string, a: Peer, b: Peer, relayIp: string, nodeIp: string): Promise<{ portA: number; portB: number }> {
  const { portA, portB } = await r.allocate(id, { publicKey: A, ip: nodeIp }, { publicKey: B, ip: nodeIp });
  a.send(fakeInitiation(B), portA, relayIp);
  await sleep(30);
  const ib = fakeInitiation(A);
  b.send(ib, portB, relayIp);
  await sleep(30);
  assert.deepEqual(a.got, [ib], "B's initiation went to A's candidate port");
  a.send(fakeResponse(B, senderIndex(ib)), portA, relayIp);
  await sleep(30);
  assert.equal(b.got.length, 1, "A's response reached B");
  a.got.length = 0;
  b.got.length = 0;
  return { portA, portB };
}

test('IPv6: a relay on ::1 binds IPv6 sockets, confirms [::1]:port sides and forwards', { skip: !HAS_V6_LOOPBACK && 'no ::1 on this machine' }, async () => {
  const seen: string[] = [];
  const r6 = new Relay({ address: '::1', portMin: 46200, portMax: 46210, onLatched: (_id, key, endpoint) => seen.push(`${key === A ? 'A' : 'B'} ${endpoint}`) });
  try {
    const [a, b] = await peers(2, '::1');
    const { portA, portB } = await confirmOn(r6, 'v6', a, b, '::1', '0:0:0:0:0:0:0:1');
    assert.deepEqual(seen, [`B [::1]:${b.port}`, `A [::1]:${a.port}`], 'canonical [v6]:port endpoints, whatever spelling the hub used');
    for (let i = 0; i < 5; i++) a.send(transport(), portA, '::1');
    b.send(transport(), portB, '::1');
    await sleep(50);
    assert.deepEqual([a.got.length, b.got.length], [1, 5]);
    const st = (await r6.stats())[0];
    assert.equal(st.a.ip, '::1');
    assert.equal(st.a.latched, `[::1]:${a.port}`);
    assert.equal(st.b.latched, `[::1]:${b.port}`);
    assert.equal(st.dropped.wrongSource, 0);
  } finally {
    await r6.close();
  }
});

test('a dual-stack relay (bound to ::) hears IPv4 nodes as ::ffff:a.b.c.d: they are the IPv4 node, and answers reach them', { skip: !HAS_V6_LOOPBACK && 'no IPv6 on this machine' }, async () => {
  const seen: string[] = [];
  const rd = new Relay({ address: '::', portMin: 46220, portMax: 46230, onLatched: (_id, key, endpoint) => seen.push(`${key === A ? 'A' : 'B'} ${endpoint}`) });
  try {
    const [a, b] = await peers(2);
    const { portA, portB } = await confirmOn(rd, 'ds', a, b, NODE_IP, NODE_IP);
    assert.deepEqual(seen, [`B 127.0.0.1:${b.port}`, `A 127.0.0.1:${a.port}`], 'the IPv4 endpoint, not the mapped one');
    a.send(transport(), portA, NODE_IP);
    b.send(transport(), portB, NODE_IP);
    await sleep(50);
    assert.deepEqual([a.got.length, b.got.length], [1, 1]);
    const [intruder] = await peers(1, '127.0.0.2');
    intruder.send(transport(), portA, NODE_IP);
    await sleep(30);
    const st = (await rd.stats())[0];
    assert.equal(st.a.latched, `127.0.0.1:${a.port}`);
    assert.equal(st.dropped.wrongSource, 1, 'another IPv4 address is still foreign');
    // An IPv6 node on the same relay.
    const [c, d] = await peers(2, '::1');
    await confirmOn(rd, 'ds6', c, d, '::1', '::1');
    assert.ok(seen.includes(`A [::1]:${c.port}`));
  } finally {
    await rd.close();
  }
});

test('a side the relay could never reach (the other family) is refused, naming the family', { skip: !HAS_V6_LOOPBACK && 'no ::1 on this machine' }, async () => {
  const r6 = new Relay({ address: '::1', portMin: 46240, portMax: 46250 });
  try {
    await assert.rejects(r6.allocate('x', { publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '::1' }), /side A's node IP 127\.0\.0\.1 is IPv4 and this relay binds ::1 \(IPv6\)/);
    await assert.rejects(r6.allocate('y', { publicKey: A, ip: '::1' }, { publicKey: B, ip: 'fe80::1%lo' }), /side B's node IP: .*zone index/);
    await assert.rejects(relay.allocate('z', { publicKey: A, ip: NODE_IP }, { publicKey: B, ip: '::1' }), /is IPv6 and this relay binds 127\.0\.0\.1 \(IPv4\)/);
    await r6.allocate('w', { publicKey: A, ip: '::1' }, { publicKey: B, ip: '::1' });
    assert.throws(() => r6.updateIp('w', A, '127.0.0.1'), /IPv4 and this relay binds ::1/);
    assert.throws(() => r6.updateIp('w', A, '::ffff:127.0.0.1'), /IPv4 and this relay binds ::1/, 'an IPv4-mapped address is the IPv4 node');
  } finally {
    await r6.close();
  }
  assert.equal(relay.has('z'), false);
});

test('the kernel fast path is IPv4 only: for an IPv6 relay address it gives none, with a reason to log', async () => {
  const { KernelPath } = await import('../../../src/relay/kernel-path.js');
  const r = await KernelPath.tryCreate('2001:db8::7');
  assert.equal(r.kernel, undefined);
  assert.match(r.reason ?? '', /IPv4 only and the relay address 2001:db8::7 is IPv6: forwarding in userspace/);
  assert.equal(await KernelPath.create('::1'), undefined);
});

test('relay protocol: node IPs of either family decode to addresses, malformed ones are refused with the reason', async () => {
  const { hubToRelaySchema, relayToHubSchema } = await import('../../../src/core/relay-protocol.js');
  const { IpAddress } = await import('../../../src/core/net/address.js');
  const { Endpoint } = await import('../../../src/core/net/endpoint.js');
  const ok = hubToRelaySchema.parse({ type: 'allocate', id: '0123456789abcdef', a: { publicKey: A, ip: '2001:DB8::5' }, b: { publicKey: B, ip: '203.0.113.10' } });
  assert.ok(ok.type === 'allocate' && ok.a.ip instanceof IpAddress && ok.a.ip.toString() === '2001:db8::5' && ok.b.ip.family === 4);
  const bad = hubToRelaySchema.safeParse({ type: 'update-ip', id: '0123456789abcdef', publicKey: A, ip: 'fe80::1%eth0' });
  assert.ok(!bad.success && /zone index/.test(bad.error.issues[0].message));
  assert.ok(!hubToRelaySchema.safeParse({ type: 'update-ip', id: '0123456789abcdef', publicKey: A, ip: '10.1' }).success);
  const hello = relayToHubSchema.parse({ type: 'hello', address: '2001:db8::7', portMin: 52000, portMax: 52999 });
  assert.ok(hello.type === 'hello' && hello.address.family === 6);
  const latched = relayToHubSchema.parse({ type: 'latched', id: '0123456789abcdef', publicKey: A, endpoint: '[2001:db8::5]:41000' });
  assert.ok(latched.type === 'latched' && latched.endpoint instanceof Endpoint && latched.endpoint.port === 41000);
  assert.ok(!relayToHubSchema.safeParse({ type: 'latched', id: '0123456789abcdef', publicKey: A, endpoint: '2001:db8::5:41000' }).success, 'an unbracketed IPv6 endpoint');
  const stats = relayToHubSchema.parse({ type: 'stats', allocations: [{ id: 'x', portA: 1, portB: 2, a: { latched: '[2001:DB8::5]:41000' }, b: { latched: null }, aToB: { packets: 0, bytes: 0 }, bToA: { packets: 0, bytes: 0 }, dropped: {} }] });
  assert.ok(stats.type === 'stats' && stats.allocations[0].a.latched === '[2001:db8::5]:41000', 'counters keep the canonical text');
});
