import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { after, afterEach, before, describe, test } from 'node:test';
import { IpAddress } from '../../../src/core/net/address.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { fakeCookieReply, fakeInitiation, fakeResponse, fakeTransport, senderIndex } from '../../../src/lab/fake-wireguard.js';
import { Relay, type AllocationStats } from '../../../src/relay/relay.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const transport = (n = 1400) => fakeTransport(n);
/** Transport of the session whose receiving side chose `index` (what WireGuard writes at bytes 4..8). */
function transportTo(index: number, n = 100): Buffer {
  const t = fakeTransport(n);
  t.writeUInt32LE(index >>> 0, 4);
  return t;
}
/** Waits for `done` (the relay's sweeper acts on its own clock); fails with `what` if it never comes. */
async function until(done: () => boolean | Promise<boolean>, what: string, ms = 8000): Promise<void> {
  for (const end = performance.now() + ms; performance.now() < end; await sleep(50)) if (await done()) return;
  assert.fail(`never happened: ${what}`);
}

type Peer = Socket & { got: Buffer[]; port: number };

function socket(address: string): Promise<Peer> {
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

/** `ip -6 addr show lo` lists ::1 here; where IPv6 is off (a container without it), the IPv6 cases skip. */
const HAS_V6_LOOPBACK = await new Promise<boolean>((resolve) => {
  const s = createSocket('udp6');
  s.once('error', () => resolve(false));
  s.bind(0, '::1', () => {
    s.close();
    resolve(true);
  });
});
const NO_V6 = !HAS_V6_LOOPBACK && 'no ::1 on this machine';

/**
 * One family's loopback as the nodes of one side see it: the nodes send from `ip` to the relay
 * on the same address. IPv4 has all of 127/8 on lo, so a foreign address (`intruder`) and a
 * second address for a node that moves (`moved`) exist without root; IPv6 has ::1 alone, so its
 * foreign sources are tested by a side whose node is elsewhere (below).
 */
interface Family {
  ip: string;
  intruder?: string;
  moved?: string;
}
const V4: Family = { ip: '127.0.0.1', intruder: '127.0.0.2', moved: '127.0.0.4' };
const V6: Family = { ip: '::1' };

const A = generateKeyPair().publicKey;
const B = generateKeyPair().publicKey;
let relay: Relay;
/** A relay whose "carrying transport" window is 600 ms instead of 15 s, so a pending move settles within a test. */
let quick: Relay;
const quickLatched: string[] = [];
const latched: string[] = [];
const released: string[] = [];
const open: Socket[] = [];
let bystanders: Peer[] = [];

/** ip:port as the relay writes it: [v6]:port for IPv6. */
const ep = (ip: string, port: number) => Endpoint.of(IpAddress.parse(ip), port).toString();

before(async () => {
  // One relay with an address of each family serves every case below: IPv4 pairs, IPv6 pairs and
  // bridged ones side by side.
  relay = new Relay({
    addresses: HAS_V6_LOOPBACK ? ['127.0.0.1', '::1'] : ['127.0.0.1'],
    portMin: 46000,
    portMax: 46100,
    idleMs: 600,
    onLatched: (id, key, endpoint) => latched.push(`${id} ${key === A ? 'A' : key === B ? 'B' : '?'} ${endpoint}`),
    onReleased: (id, reason) => released.push(`${id} ${reason}`),
  });
  quick = new Relay({
    addresses: HAS_V6_LOOPBACK ? ['127.0.0.1', '::1'] : ['127.0.0.1'],
    portMin: 46120,
    portMax: 46180,
    idleMs: 60_000,
    activeMs: 600,
    onLatched: (id, key, endpoint) => quickLatched.push(`${id} ${key === A ? 'A' : key === B ? 'B' : '?'} ${endpoint}`),
  });
  // Sockets nobody has any business sending to: on the nodes' IPs, and on another.
  bystanders = [await socket('127.0.0.1'), await socket('127.0.0.3'), ...(HAS_V6_LOOPBACK ? [await socket('::1')] : [])];
  open.push(...bystanders);
});
afterEach(() =>
  assert.deepEqual(
    bystanders.map((s) => s.got.length),
    bystanders.map(() => 0),
    'a bystander received something',
  ),
);
after(async () => {
  open.forEach((s) => s.close());
  await relay.close();
  await quick.close();
});

async function peers(n: number, address: string): Promise<Peer[]> {
  const xs = await Promise.all(Array.from({ length: n }, () => socket(address)));
  open.push(...xs);
  return xs;
}

async function statOf(r: Relay, id: string): Promise<AllocationStats> {
  const st = (await r.stats()).find((x) => x.id === id);
  assert.ok(st, `no allocation ${id}`);
  return st;
}

/** `idle`: the idle expiry (1.5 s of waiting) is the sweeper's, the same for every family: run it for two. */
const SETUPS: { name: string; A: Family; B: Family; skip: string | false; idle: boolean }[] = [
  { name: 'IPv4', A: V4, B: V4, skip: false, idle: true },
  { name: 'IPv6', A: V6, B: V6, skip: NO_V6, idle: false },
  { name: 'bridged, A on IPv6 and B on IPv4', A: V6, B: V4, skip: NO_V6, idle: true },
  { name: 'bridged, A on IPv4 and B on IPv6', A: V4, B: V6, skip: NO_V6, idle: false },
];

for (const setup of SETUPS) {
  const { A: fa, B: fb } = setup;
  /** Where each side's node sends: the relay's address of the node's family. */
  const toA = fa.ip;
  const toB = fb.ip;
  const tag = setup.name.replace(/\W+/g, '').slice(0, 8);

  describe(`relay, ${setup.name}`, { skip: setup.skip }, () => {
    const stat = (id: string) => statOf(relay, id);

    /**
     * The handshake as two WireGuards make it through a fresh allocation: A's first initiation
     * finds nobody to go to, B's reaches A's candidate port, A answers it, which confirms both.
     */
    async function confirm(id: string, r = relay): Promise<{ portA: number; portB: number; a: Peer; b: Peer }> {
      const { portA, portB } = await r.allocate(id, { publicKey: A, ip: fa.ip }, { publicKey: B, ip: fb.ip });
      const [a] = await peers(1, fa.ip);
      const [b] = await peers(1, fb.ip);
      a.send(fakeInitiation(B), portA, toA);
      // B's initiation goes to A's candidate port: A's must have been read first (a fixed sleep was
      // not always enough on a loaded runner, when both datagrams were read in one turn, B's first).
      await until(async () => (await statOf(r, id)).a.candidates.length > 0, "A's initiation at the relay", 3000);
      const ib = fakeInitiation(A);
      b.send(ib, portB, toB);
      await until(() => a.got.length >= 1, 'the datagrams to arrive', 3000);
      assert.deepEqual(a.got, [ib], "B's initiation went to A's candidate port");
      a.send(fakeResponse(B, senderIndex(ib)), portA, toA);
      await sleep(30);
      await until(() => b.got.length >= 1, 'the datagrams to arrive', 3000);
      assert.equal(b.got.length, 1, "A's response reached B");
      a.got.length = 0;
      b.got.length = 0;
      return { portA, portB, a, b };
    }

    test('confirms both sides from an answered handshake, then forwards and counts per direction', async () => {
      latched.length = 0;
      const id = `${tag}1`;
      const { portA, portB, a, b } = await confirm(id);
      assert.notEqual(portA, portB, 'one port range for both families: the two sides never share a number');
      assert.deepEqual(latched, [`${id} B ${ep(fb.ip, b.port)}`, `${id} A ${ep(fa.ip, a.port)}`]);
      for (let i = 0; i < 10; i++) a.send(transport(), portA, toA);
      for (let i = 0; i < 3; i++) b.send(transport(200), portB, toB);
      await sleep(100);
      await until(() => b.got.length >= 10 && a.got.length >= 3, 'the datagrams to arrive', 3000);
      assert.equal(b.got.length, 10);
      assert.equal(a.got.length, 3);
      const st = await stat(id);
      assert.equal(st.a.latched, ep(fa.ip, a.port));
      assert.equal(st.b.latched, ep(fb.ip, b.port));
      assert.deepEqual([st.a.relayAddress, st.b.relayAddress], [fa.ip, fb.ip], "each side's socket is on the relay address of its node's family");
      assert.equal(st.kernel, false);
      assert.deepEqual(st.aToB, { packets: 1 + 10, bytes: 92 + 10 * 1400 }, 'the response, then the data');
      assert.deepEqual(st.bToA, { packets: 1 + 3, bytes: 148 + 3 * 200 }, "B's initiation, then the data");
      assert.deepEqual(st.dropped, { malformed: 0, wrongSource: 0, badMac1: 0, unconfirmed: 0, unknownIndex: 0, replayed: 0, noDestination: 1, notLatched: 1 });
      relay.release(id);
    });

    test('nothing passes before a side is confirmed: transport, unanswered initiations, foreign responses', async () => {
      const id = `${tag}2`;
      const { portA, portB } = await relay.allocate(id, { publicKey: A, ip: fa.ip }, { publicKey: B, ip: fb.ip });
      const [a] = await peers(1, fa.ip);
      const [b] = await peers(1, fb.ip);
      for (let i = 0; i < 4; i++) a.send(transport(), portA, toA); // no port is confirmed yet
      const ia = fakeInitiation(B);
      a.send(ia, portA, toA); // a candidate; B has no address: nowhere to go
      await sleep(30);
      for (let i = 0; i < 3; i++) a.send(transport(), portA, toA); // a candidate is not confirmed
      b.send(fakeResponse(A, senderIndex(ia) ^ 1), portB, toB); // names no initiation
      b.send(fakeCookieReply(senderIndex(ia) ^ 1), portB, toB);
      b.send(fakeResponse(B, senderIndex(ia)), portB, toB); // right index, mac1 for the wrong initiator
      await sleep(50);
      assert.equal(a.got.length + b.got.length, 0);
      const st = await stat(id);
      assert.equal(st.a.latched, null);
      assert.equal(st.b.latched, null);
      assert.deepEqual(st.a.candidates, [ep(fa.ip, a.port)]);
      assert.deepEqual(st.dropped, { malformed: 0, wrongSource: 0, badMac1: 1, unconfirmed: 7, unknownIndex: 2, replayed: 0, noDestination: 1, notLatched: 8 });
      relay.release(id);
    });

    test('abuse: garbage of many lengths, foreign sources, unconfirmed ports are dropped and counted; it keeps forwarding', async () => {
      const id = `${tag}3`;
      const { portA, portB, a, b } = await confirm(id);
      const [sameIp] = await peers(1, fa.ip); // A's node IP, another port
      let garbage = 0;
      for (let len = 0; len <= 200; len++) {
        const g = randomBytes(len);
        if (len >= 4) g[1] = 1 + (len % 255); // reserved bytes not zero: never a WireGuard message
        a.send(g, portA, toA);
        garbage++;
      }
      // The right type byte with a wrong length is garbage too (transport must be >= 32 bytes).
      for (const [type, len] of [[1, 147], [1, 149], [2, 91], [2, 93], [3, 63], [3, 65], [4, 31], [4, 4], [5, 148], [0, 64]]) {
        const g = Buffer.concat([Buffer.from([type, 0, 0, 0]), randomBytes(len - 4)]);
        b.send(g, portB, toB);
        garbage++;
      }
      // Addresses no allocation has (IPv4 only: IPv6 loopback is one address; see the next describe).
      let foreign = 0;
      const intruders: Peer[] = [];
      if (fa.intruder) {
        const [x] = await peers(1, fa.intruder);
        intruders.push(x);
        for (let i = 0; i < 20; i++) x.send(transport(), portA, toA);
        x.send(fakeInitiation(B), portA, toA); // a valid handshake, but from an address outside the allocation
        foreign += 21;
      }
      if (fb.intruder) {
        const [x] = await peers(1, fb.intruder);
        intruders.push(x);
        x.send(fakeResponse(A, 1), portB, toB);
        foreign += 1;
      }
      for (let i = 0; i < 5; i++) sameIp.send(transport(), portA, toA); // data from an unconfirmed port
      sameIp.send(fakeInitiation(A), portA, toA); // mac1 made for the wrong responder
      await sleep(150);
      assert.equal(a.got.length + b.got.length + sameIp.got.length + intruders.reduce((n, x) => n + x.got.length, 0), 0, 'nothing was forwarded anywhere');
      const st = await stat(id);
      assert.deepEqual(st.dropped, { malformed: garbage, wrongSource: foreign, badMac1: 1, unconfirmed: 5, unknownIndex: 0, replayed: 0, noDestination: 1, notLatched: 6 });
      assert.equal(st.a.latched, ep(fa.ip, a.port), 'the allocation still belongs to A');
      a.send(transport(), portA, toA);
      b.send(transport(), portB, toB);
      await sleep(50);
      assert.deepEqual([a.got.length, b.got.length], [1, 1], 'and still forwards both ways');
      relay.release(id);
    });

    test('a spoofed initiation with a valid mac1, or a replayed genuine one, from another port cannot take a side over', async () => {
      const id = `${tag}4`;
      const { portA, portB, a, b } = await confirm(id);
      latched.length = 0;
      const [spoofer] = await peers(1, fa.ip); // A's node IP (spoofed), another port
      // A forged initiation: mac1 needs only B's public key. It reaches B, whose WireGuard cannot
      // decrypt it and never answers, so the spoofer's port stays a candidate.
      spoofer.send(fakeInitiation(B), portA, toA);
      await sleep(30);
      await until(() => b.got.length >= 1, 'the datagrams to arrive', 3000);
      assert.equal(b.got.length, 1, 'forwarded to B like any initiation');
      for (let i = 0; i < 5; i++) spoofer.send(transport(), portA, toA);
      for (let i = 0; i < 5; i++) b.send(transport(), portB, toB);
      await sleep(50);
      await until(() => a.got.length >= 5, 'the datagrams to arrive', 3000);
      assert.equal(a.got.length, 5, "B's data still reaches the real A");
      assert.equal(spoofer.got.length, 0);

      // A re-handshakes from its real port; the spoofer replays that initiation from its own port
      // before B answers. B's answer must go to A's real port, and A stays there.
      const genuine = fakeInitiation(B);
      a.send(genuine, portA, toA);
      await sleep(20);
      spoofer.send(genuine, portA, toA);
      await sleep(20);
      b.send(fakeResponse(A, senderIndex(genuine)), portB, toB);
      await sleep(30);
      await until(() => a.got.length >= 6, 'the datagrams to arrive', 3000);
      assert.equal(a.got.length, 6, 'the response went to the real A');
      // The same initiation replayed again after it was answered: a fresh candidate at the
      // spoofer's port, which B (a real WireGuard rejects replays) never answers.
      spoofer.send(genuine, portA, toA);
      await sleep(20);
      // A cookie reply naming the spoofer's candidate goes to that candidate and confirms nothing.
      b.send(fakeCookieReply(senderIndex(genuine)), portB, toB);
      await sleep(20);
      await until(() => spoofer.got.length >= 1, 'the datagrams to arrive', 3000);
      assert.equal(spoofer.got.length, 1);
      assert.equal(spoofer.got[0][0], 3);
      for (let i = 0; i < 5; i++) b.send(transport(), portB, toB);
      for (let i = 0; i < 5; i++) a.send(transport(), portA, toA);
      await sleep(50);
      await until(() => a.got.length >= 11 && spoofer.got.length >= 1, 'the datagrams to arrive', 3000);
      assert.equal(a.got.length, 11, "B's data still reaches the real A");
      assert.equal(spoofer.got.length, 1);
      const st = await stat(id);
      assert.equal(st.a.latched, ep(fa.ip, a.port));
      assert.equal(st.b.latched, ep(fb.ip, b.port));
      assert.deepEqual(st.dropped, { malformed: 0, wrongSource: 0, badMac1: 0, unconfirmed: 5, unknownIndex: 0, replayed: 1, noDestination: 1, notLatched: 6 });
      assert.deepEqual(latched, [], 'no side moved');
      relay.release(id);
    });

    test('roaming inside one NAT: a handshake from a new port that the other side answers moves the side', async () => {
      const id = `${tag}5`;
      const { portA, portB, a, b } = await confirm(id);
      latched.length = 0;
      const [a2] = await peers(1, fa.ip); // A's NAT gave it a new port
      a2.send(transport(), portA, toA); // WireGuard first sends data from the new port: dropped
      const ia = fakeInitiation(B);
      a2.send(ia, portA, toA); // then re-handshakes
      await sleep(30);
      b.send(transport(), portB, toB); // until B answers, A is still where it was
      await sleep(30);
      await until(() => a.got.length >= 1, 'the datagrams to arrive', 3000);
      assert.equal(a.got.length, 1);
      b.send(fakeResponse(A, senderIndex(ia)), portB, toB);
      await sleep(30);
      assert.deepEqual(latched, [`${id} A ${ep(fa.ip, a2.port)}`]);
      b.send(transport(), portB, toB);
      a.send(transport(), portA, toA); // the old port is no longer A's
      a2.send(transport(), portA, toA);
      await sleep(50);
      await until(() => a2.got.length >= 2 && a.got.length >= 1 && b.got.length >= 2, 'the datagrams to arrive', 3000);
      assert.equal(a2.got.length, 2, 'the response and the data reach A at its new port');
      assert.equal(a.got.length, 1, 'and no longer the old one');
      assert.equal(b.got.length, 2, "B got A's initiation and its data from the new port, not the old one's");
      const st = await stat(id);
      assert.equal(st.a.latched, ep(fa.ip, a2.port));
      assert.deepEqual([st.dropped.unconfirmed, st.dropped.unknownIndex], [2, 0]);
      // The answered initiation is spent: the same response again names nothing.
      b.send(fakeResponse(A, senderIndex(ia)), portB, toB);
      await sleep(30);
      assert.equal((await stat(id)).dropped.unknownIndex, 1);
      assert.equal(a2.got.length, 2);
      relay.release(id);
    });

    test('a forged handshake from new ports of both IPs does not move a pair that carries transport: the genuine pair keeps flowing', async () => {
      const id = `${tag}f`;
      const { portA, portB, a, b } = await confirm(id);
      latched.length = 0;
      // The genuine pair is busy both ways.
      for (let i = 0; i < 3; i++) a.send(transport(), portA, toA);
      for (let i = 0; i < 3; i++) b.send(transport(), portB, toB);
      await sleep(50);
      assert.deepEqual([a.got.length, b.got.length], [3, 3]);
      a.got.length = 0;
      b.got.length = 0;

      // Someone who can spoof both IPs: an initiation from a new port of A's IP, a valid-mac1
      // response naming it from a new port of B's IP, then transport of the session they made up.
      const [fakeA] = await peers(1, fa.ip);
      const [fakeB] = await peers(1, fb.ip);
      const forged = fakeInitiation(B);
      fakeA.send(forged, portA, toA);
      await sleep(30);
      await until(() => b.got.length >= 1, 'the datagrams to arrive', 3000);
      assert.equal(b.got.length, 1, 'the initiation is forwarded to B like any other (its WireGuard ignores it)');
      b.got.length = 0;
      const forgedResponse = fakeResponse(A, senderIndex(forged));
      fakeB.send(forgedResponse, portB, toB);
      await sleep(30);
      for (let i = 0; i < 4; i++) fakeA.send(transportTo(senderIndex(forgedResponse)), portA, toA);
      for (let i = 0; i < 4; i++) fakeB.send(transportTo(senderIndex(forged)), portB, toB);
      await sleep(30);

      // The genuine pair goes on as before: every datagram reaches its peer, and nothing forged does.
      for (let i = 0; i < 10; i++) a.send(transport(), portA, toA);
      for (let i = 0; i < 10; i++) b.send(transport(), portB, toB);
      await sleep(80);
      await until(() => b.got.length >= 10 && a.got.length >= 10, 'the datagrams to arrive', 3000);
      assert.equal(b.got.length, 10, "all of A's data reached B, and nothing else did");
      assert.equal(a.got.length, 10, "all of B's data reached A, and nothing else did");
      assert.deepEqual(latched, [], 'no side moved');
      const st = await stat(id);
      assert.equal(st.a.latched, ep(fa.ip, a.port));
      assert.equal(st.b.latched, ep(fb.ip, b.port));
      assert.equal(st.a.moving, ep(fa.ip, fakeA.port), 'the forged ports are only a pending move');
      relay.release(id);
    });

    test('roaming while the pair is busy: the new session flows at once, and the side moves once its old port is silent', async () => {
      const id = `${tag}r`;
      const { portA, portB, a, b } = await confirm(id, quick);
      quickLatched.length = 0;
      for (let i = 0; i < 3; i++) a.send(transport(), portA, toA);
      for (let i = 0; i < 3; i++) b.send(transport(), portB, toB);
      await sleep(50);
      a.got.length = 0;
      b.got.length = 0;

      // A's NAT gives it a new port; A re-handshakes from there and B answers from where it is.
      const [a2] = await peers(1, fa.ip);
      const ia = fakeInitiation(B);
      a2.send(ia, portA, toA);
      await sleep(30);
      await until(() => b.got.length >= 1, 'the datagrams to arrive', 3000);
      assert.equal(b.got.length, 1);
      const rb = fakeResponse(A, senderIndex(ia));
      b.send(rb, portB, toB);
      await sleep(30);
      await until(() => a2.got.length >= 1, 'the datagrams to arrive', 3000);
      assert.equal(a2.got.length, 1, 'the response reached A at its new port');
      // The new session, both ways, at once: A's first data names B's index, B's names A's.
      a2.send(transportTo(senderIndex(rb)), portA, toA);
      await sleep(30);
      await until(() => b.got.length >= 2, 'the datagrams to arrive', 3000);
      assert.equal(b.got.length, 2, "A's new-session data reached B without waiting for the move");
      b.send(transportTo(senderIndex(ia)), portB, toB);
      await sleep(30);
      await until(() => a2.got.length >= 2, 'the datagrams to arrive', 3000);
      assert.equal(a2.got.length, 2, "B's new-session data reached A's new port");

      // A's old port is silent now; while the new one carries, the move is made.
      await until(async () => {
        a2.send(transportTo(senderIndex(rb)), portA, toA);
        b.send(transportTo(senderIndex(ia)), portB, toB);
        return (await statOf(quick, id)).a.latched === ep(fa.ip, a2.port);
      }, 'A moved to its new port');
      assert.deepEqual(quickLatched, [`${id} A ${ep(fa.ip, a2.port)}`]);
      await sleep(50); // the last round of the loop is still arriving
      const before = [a.got.length, a2.got.length];
      b.send(transport(), portB, toB); // any index now goes to A's new port
      a.send(transport(), portA, toA); // and the old port is no longer A's
      await sleep(50);
      assert.deepEqual([a.got.length, a2.got.length], [before[0], before[1] + 1]);
      const st = await statOf(quick, id);
      assert.equal(st.a.moving, null);
      assert.equal(st.b.latched, ep(fb.ip, b.port), 'B never moved');
      quick.release(id);
    });

    test(`a released allocation forwards nothing${setup.idle ? '; an idle one expires and says so' : ''}`, async () => {
      released.length = 0;
      const [i6, i7, i8] = [`${tag}6`, `${tag}7`, `${tag}8`];
      const r1 = await confirm(i6);
      assert.equal(relay.release(i6), true);
      assert.equal(relay.release(i6), false);
      assert.equal(relay.has(i6), false);
      r1.a.send(transport(), r1.portA, toA);
      r1.b.send(transport(), r1.portB, toB);
      r1.a.send(fakeInitiation(B), r1.portA, toA);
      await sleep(50);
      assert.equal(r1.a.got.length + r1.b.got.length, 0);
      assert.deepEqual(released, [`${i6} released`]);

      if (setup.idle) {
        const r2 = await confirm(i7);
        r2.a.send(transport(), r2.portA, toA);
        await sleep(50);
        assert.equal(r2.b.got.length, 1);
        await sleep(1500); // idleMs is 600; the sweeper looks every 300 ms
        assert.equal(relay.has(i7), false);
        assert.deepEqual(released, [`${i6} released`, `${i7} idle`]);
        assert.equal((await relay.stats()).some((x) => x.id === i7), false);
      }

      // After all of the above, a fresh pair still works.
      const r3 = await confirm(i8);
      r3.b.send(transport(), r3.portB, toB);
      await sleep(50);
      assert.equal(r3.a.got.length, 1);
      relay.release(i8);
    });

    test('a node that changed IP is confirmed again, datagrams from its old IP are foreign; a change of family is refused', async () => {
      const id = `${tag}9`;
      const { portA, portB, a, b } = await confirm(id);
      if (fa.moved) {
        const [a2] = await peers(1, fa.moved);
        relay.updateIp(id, A, fa.moved);
        assert.equal((await stat(id)).a.latched, null);
        a.send(transport(), portA, toA);
        b.send(transport(), portB, toB); // A has no confirmed port: dropped
        const ia = fakeInitiation(B);
        a2.send(ia, portA, toA);
        await sleep(30);
        b.send(fakeResponse(A, senderIndex(ia)), portB, toB);
        await sleep(30);
        b.send(transport(), portB, toB);
        await sleep(30);
        await until(() => a2.got.length >= 2, 'the datagrams to arrive', 3000);
        assert.equal(a.got.length, 0);
        assert.equal(a2.got.length, 2);
        const st = await stat(id);
        assert.equal(st.a.latched, ep(fa.moved, a2.port));
        assert.deepEqual([st.dropped.wrongSource, st.dropped.unconfirmed], [1, 1]);
      } else {
        // No second IPv6 loopback address to move to: A's node moves elsewhere, and what still
        // comes from ::1 is foreign, handshakes included.
        relay.updateIp(id, A, '2001:db8::5');
        assert.equal((await stat(id)).a.latched, null);
        a.send(transport(), portA, toA);
        a.send(fakeInitiation(B), portA, toA);
        b.send(transport(), portB, toB); // A has no confirmed port: dropped
        await sleep(50);
        assert.equal(a.got.length + b.got.length, 0);
        const st = await stat(id);
        assert.equal(st.a.ip, '2001:db8::5');
        assert.deepEqual([st.dropped.wrongSource, st.dropped.unconfirmed], [2, 1]);
      }
      // The node was told a relay endpoint of its family; one of the other family needs a new allocation.
      const other = IpAddress.parse(fa.ip).family === 4 ? '::1' : '127.0.0.1';
      assert.throws(() => relay.updateIp(id, A, other), /side A's node moved from IPv\d .* to IPv\d .*: release allocation \S+ and allocate anew/);
      assert.throws(() => relay.updateIp(id, B, IpAddress.parse(fb.ip).family === 4 ? '::1' : '127.0.0.1'), /side B's node moved/);
      assert.ok(relay.has(id), 'refusing the change leaves the allocation as it was');
      relay.release(id);
    });
  });
}

describe('IPv6 sources', { skip: NO_V6 }, () => {
  test("a side accepts only its node's IPv6 address: handshakes and data from another are foreign, counted, and go nowhere", async () => {
    // The node of side A is at 2001:db8::1, which is not this machine: everything from ::1 to
    // A's port is a foreign source (IPv6 loopback has one address, so this stands for an intruder).
    const { portA, portB } = await relay.allocate('v6src', { publicKey: A, ip: '2001:db8::1' }, { publicKey: B, ip: '::1' });
    const [x] = await peers(1, '::1');
    const [b] = await peers(1, '::1');
    const ib = fakeInitiation(A);
    b.send(ib, portB, '::1'); // B's candidate, so a forwarded initiation would have somewhere to go
    await sleep(30);
    for (let i = 0; i < 10; i++) x.send(transport(), portA, '::1');
    x.send(fakeInitiation(B), portA, '::1'); // valid mac1, foreign source
    x.send(fakeResponse(A, senderIndex(ib)), portA, '::1'); // would confirm B's candidate if it came from A
    x.send(fakeCookieReply(senderIndex(ib)), portA, '::1');
    await sleep(50);
    assert.equal(x.got.length + b.got.length, 0);
    const st = await statOf(relay, 'v6src');
    assert.equal(st.dropped.wrongSource, 13);
    assert.equal(st.a.latched, null);
    assert.equal(st.b.latched, null, 'a response from a foreign source confirms nobody');
    assert.deepEqual(st.b.candidates, [`[::1]:${b.port}`]);
    relay.release('v6src');
  });

  test('a node IP in any IPv6 spelling, or IPv4-mapped, is the same node', async () => {
    const seen: string[] = [];
    const r = new Relay({ addresses: ['127.0.0.1', '0:0:0:0:0:0:0:1'], portMin: 46300, portMax: 46310, onLatched: (_id, key, endpoint) => seen.push(`${key === A ? 'A' : 'B'} ${endpoint}`) });
    try {
      assert.deepEqual(r.addresses.map(String), ['127.0.0.1', '::1']);
      const [a] = await peers(1, '::1');
      const [b] = await peers(1, '127.0.0.1');
      // B given as the IPv4-mapped address: served on the IPv4 address, as the IPv4 node.
      const { portA, portB } = await r.allocate('sp', { publicKey: A, ip: '0::1' }, { publicKey: B, ip: '::ffff:127.0.0.1' });
      a.send(fakeInitiation(B), portA, '::1');
      await sleep(30);
      const ib = fakeInitiation(A);
      b.send(ib, portB, '127.0.0.1');
      await sleep(30);
      a.send(fakeResponse(B, senderIndex(ib)), portA, '::1');
      await sleep(30);
      assert.deepEqual(seen, [`B 127.0.0.1:${b.port}`, `A [::1]:${a.port}`], 'canonical endpoints, whatever spelling the hub used');
      const st = await statOf(r, 'sp');
      assert.deepEqual([st.a.ip, st.a.relayAddress, st.b.ip, st.b.relayAddress], ['::1', '::1', '127.0.0.1', '127.0.0.1']);
    } finally {
      await r.close();
    }
  });

  test('a dual-stack relay (its IPv6 address is ::) hears IPv4 nodes as ::ffff:a.b.c.d: they are the IPv4 node, and never an IPv6 one', async () => {
    const seen: string[] = [];
    const rd = new Relay({ addresses: ['::'], portMin: 46220, portMax: 46230, onLatched: (_id, key, endpoint) => seen.push(`${key === A ? 'A' : 'B'} ${endpoint}`) });
    try {
      // Both sides IPv4, on dual-stack sockets.
      const [a, b] = await peers(2, '127.0.0.1');
      const { portA, portB } = await rd.allocate('ds', { publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '127.0.0.1' });
      a.send(fakeInitiation(B), portA, '127.0.0.1');
      await sleep(30);
      const ib = fakeInitiation(A);
      b.send(ib, portB, '127.0.0.1');
      await sleep(30);
      a.send(fakeResponse(B, senderIndex(ib)), portA, '127.0.0.1');
      await sleep(30);
      assert.deepEqual(seen, [`B 127.0.0.1:${b.port}`, `A 127.0.0.1:${a.port}`], 'the IPv4 endpoint, not the mapped one');
      a.got.length = 0;
      b.got.length = 0;
      a.send(transport(), portA, '127.0.0.1');
      b.send(transport(), portB, '127.0.0.1');
      await sleep(50);
      assert.deepEqual([a.got.length, b.got.length], [1, 1]);
      const [intruder] = await peers(1, '127.0.0.2');
      const [six] = await peers(1, '::1');
      intruder.send(transport(), portA, '127.0.0.1');
      six.send(transport(), portA, '::1'); // the same socket, reached over IPv6: not the IPv4 node
      six.send(fakeInitiation(B), portA, '::1');
      await sleep(30);
      let st = await statOf(rd, 'ds');
      assert.equal(st.a.latched, `127.0.0.1:${a.port}`);
      assert.equal(st.a.relayAddress, '::');
      assert.equal(st.dropped.wrongSource, 3, 'another IPv4 address, and ::1, are foreign');

      // An IPv6 side on the same relay: datagrams from the mapped IPv4 loopback are foreign to it.
      const { portA: p6 } = await rd.allocate('ds6', { publicKey: A, ip: '::1' }, { publicKey: B, ip: '::1' });
      a.send(transport(), p6, '127.0.0.1');
      a.send(fakeInitiation(B), p6, '127.0.0.1');
      await sleep(30);
      st = await statOf(rd, 'ds6');
      assert.equal(st.dropped.wrongSource, 2, '::ffff:127.0.0.1 is not ::1');
      assert.deepEqual(st.a.candidates, []);
    } finally {
      await rd.close();
    }
  });
});

test('a side the relay could never reach (no address of its family) is refused, naming the family and the fix', { skip: NO_V6 }, async () => {
  const r6 = new Relay({ addresses: ['::1'], portMin: 46240, portMax: 46250 });
  const r4 = new Relay({ addresses: ['127.0.0.1'], portMin: 46260, portMax: 46270 });
  try {
    await assert.rejects(r6.allocate('x', { publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '::1' }), /side A's node IP 127\.0\.0\.1 is IPv4 and this relay has no IPv4 address \(it has ::1 \(IPv6\)\).*use a relay with an IPv4 address/);
    await assert.rejects(r6.allocate('y', { publicKey: A, ip: '::1' }, { publicKey: B, ip: 'fe80::1%lo' }), /side B's node IP: .*zone index/);
    await assert.rejects(r4.allocate('z', { publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '::1' }), /side B's node IP ::1 is IPv6 and this relay has no IPv6 address \(it has 127\.0\.0\.1 \(IPv4\)\)/);
    await r6.allocate('w', { publicKey: A, ip: '::1' }, { publicKey: B, ip: '::1' });
    assert.throws(() => r6.updateIp('w', A, '127.0.0.1'), /IPv4 and this relay has no IPv4 address/);
    assert.throws(() => r6.updateIp('w', A, '::ffff:127.0.0.1'), /IPv4 and this relay has no IPv4 address/, 'an IPv4-mapped address is the IPv4 node');
    assert.equal(r4.has('z'), false);
    assert.deepEqual((await r4.stats()).length, 0, 'a refused allocation leaves no socket behind');
  } finally {
    await Promise.all([r6.close(), r4.close()]);
  }
});

test("a relay's addresses: one or two, at most one per family", () => {
  assert.throws(() => new Relay({ addresses: [], portMin: 1, portMax: 2 }), /addresses: give the relay one address, or one of each family/);
  assert.throws(() => new Relay({ addresses: ['127.0.0.1', '127.0.0.2'], portMin: 1, portMax: 2 }), /127\.0\.0\.1 and 127\.0\.0\.2 are both IPv4; a relay has at most one address per family/);
  assert.throws(() => new Relay({ addresses: ['127.0.0.1', '::ffff:127.0.0.2'], portMin: 1, portMax: 2 }), /both IPv4/, 'an IPv4-mapped address is of the IPv4 family');
  assert.throws(() => new Relay({ addresses: ['10.1'], portMin: 1, portMax: 2 }), /addresses\[0\]: "10\.1" is not an IPv4 address/);
});

test('the kernel fast path per family: IPv6 has the ingress mode only, and says why it is not used', async () => {
  const { KernelPath } = await import('../../../src/relay/kernel-path.js');
  // None of these touches nftables: each is refused before (a unit test must not change the host).
  const nat = await KernelPath.tryCreate(IpAddress.parse('2001:db8::7'), { mode: 'nat', port: 52000 });
  assert.equal(nat.kernel, undefined);
  assert.match(nat.reason ?? '', /nat mode is IPv4 only and the relay address 2001:db8::7 is IPv6: its pairs forward in userspace/);
  const absent = await KernelPath.tryCreate(IpAddress.parse('2001:db8::7'), { port: 52000 });
  assert.equal(absent.kernel, undefined);
  assert.match(absent.reason ?? '', process.getuid?.() === 0 ? /IPv6 needs the relay address on a local interface and 2001:db8::7 is on none: IPv6 pairs forward in userspace/ : /needs root/);
  assert.match((await KernelPath.tryCreate(IpAddress.parse('::'), { port: 52000 })).reason ?? '', /unspecified/);
  // Text never reaches a script: only an address value does (the CLI parses --relay-address).
  const text = await KernelPath.tryCreate('198.51.100.1 } ; flush ruleset ; table ip x {' as unknown as IpAddress, { port: 52000 });
  assert.match(text.reason ?? '', /is not an IP address value: parse it \(core\/net\) first/);
  assert.match((await KernelPath.tryCreate(IpAddress.parse('198.51.100.1'), { port: 0 })).reason ?? '', /first port 0 is not a port/);
  const { relayTable } = await import('../../../src/relay/kernel-path.js');
  assert.notEqual(relayTable(4, 52000), relayTable(4, 53000), 'two relays on one host, two tables');
  assert.notEqual(relayTable(4, 52000), relayTable(6, 52000));
  const both = await KernelPath.forAddresses([IpAddress.parse('::')], { mode: 'nat', port: 52000 });
  assert.deepEqual(both.kernels, []);
  assert.deepEqual(both.userspace.map((u) => u.address.toString()), ['::']);
});

test('relay protocol: node IPs of either family decode to addresses, malformed ones are refused with the reason', async () => {
  const { hubToRelaySchema, relayToHubSchema } = await import('../../../src/core/relay-protocol.js');
  const ok = hubToRelaySchema.parse({ type: 'allocate', id: '0123456789abcdef', a: { publicKey: A, ip: '2001:DB8::5' }, b: { publicKey: B, ip: '203.0.113.10' } });
  assert.ok(ok.type === 'allocate' && ok.a.ip instanceof IpAddress && ok.a.ip.toString() === '2001:db8::5' && ok.b.ip.family === 4);
  const bad = hubToRelaySchema.safeParse({ type: 'update-ip', id: '0123456789abcdef', publicKey: A, ip: 'fe80::1%eth0' });
  assert.ok(!bad.success && /zone index/.test(bad.error.issues[0].message));
  assert.ok(!hubToRelaySchema.safeParse({ type: 'update-ip', id: '0123456789abcdef', publicKey: A, ip: '10.1' }).success);
  const latched = relayToHubSchema.parse({ type: 'latched', id: '0123456789abcdef', publicKey: A, endpoint: '[2001:db8::5]:41000' });
  assert.ok(latched.type === 'latched' && latched.endpoint instanceof Endpoint && latched.endpoint.port === 41000);
  assert.ok(!relayToHubSchema.safeParse({ type: 'latched', id: '0123456789abcdef', publicKey: A, endpoint: '2001:db8::5:41000' }).success, 'an unbracketed IPv6 endpoint');
  const stats = relayToHubSchema.parse({ type: 'stats', allocations: [{ id: 'x', portA: 1, portB: 2, a: { latched: '[2001:DB8::5]:41000' }, b: { latched: null }, aToB: { packets: 0, bytes: 0 }, bToA: { packets: 0, bytes: 0 }, dropped: {} }] });
  assert.ok(stats.type === 'stats' && stats.allocations[0].a.latched === '[2001:db8::5]:41000', 'counters keep the canonical text');
});

test("relay protocol: the hello carries the relay's addresses, one or one per family, each one nodes can reach", async () => {
  const { relayToHubSchema } = await import('../../../src/core/relay-protocol.js');
  const hello = (fields: object) => relayToHubSchema.safeParse({ type: 'hello', portMin: 52000, portMax: 52999, ...fields });
  const addresses = (fields: object) => {
    const r = hello(fields);
    assert.ok(r.success && r.data.type === 'hello', JSON.stringify(fields));
    return r.data.addresses.map(String);
  };
  const refused = (fields: object): string => {
    const r = hello(fields);
    assert.ok(!r.success, `${JSON.stringify(fields)} was accepted`);
    return r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  };
  assert.deepEqual(addresses({ addresses: ['203.0.113.2', '2001:DB8::2'] }), ['203.0.113.2', '2001:db8::2']);
  assert.deepEqual(addresses({ addresses: ['2001:db8::2'] }), ['2001:db8::2']);
  assert.deepEqual(addresses({ addresses: ['10.0.0.2'] }), ['10.0.0.2'], 'private IPv4 serves the nodes that share it, as for the hub endpoint');
  assert.deepEqual(addresses({ address: '198.51.100.7' }), ['198.51.100.7'], "a relay from before IPv6 says `address`: it is read as a list of one");
  assert.match(refused({ addresses: ['::1'] }), /^addresses: ::1 is a loopback address .*give an address nodes on other machines reach the relay at/);
  assert.match(refused({ addresses: ['203.0.113.2', 'fe80::2'] }), /fe80::2 is a link-local address/);
  assert.match(refused({ addresses: ['fd00::2'] }), /fd00::2 is a unique-local address \(fc00::\/7 is never routed/);
  assert.match(refused({ addresses: ['127.0.0.1'] }), /127\.0\.0\.1 is a loopback address/);
  assert.match(refused({ addresses: ['::ffff:203.0.113.2'] }), /IPv4-mapped IPv6 address; give the IPv4 address itself \(203\.0\.113\.2\)/);
  assert.match(refused({ addresses: ['203.0.113.2', '203.0.113.3'] }), /203\.0\.113\.2 and 203\.0\.113\.3 are both IPv4; a relay has at most one address per family/);
  assert.match(refused({ addresses: [] }), /a relay needs an address/);
  assert.match(refused({ addresses: ['203.0.113.2', '2001:db8::2', '2001:db8::3'] }), /addresses:/);
  assert.match(refused({ address: '::1' }), /^address: ::1 is a loopback address/);
  assert.match(refused({}), /^addresses: required/);
  assert.match(refused({ addresses: ['2001:db8::5%eth0'] }), /zone index/);
});

test('a relay address this machine does not have is said at once, not as a full port range', async () => {
  const r = new Relay({ addresses: ['127.0.0.1', '2001:db8::77'], portMin: 46400, portMax: 46900 });
  try {
    const t0 = performance.now();
    await assert.rejects(r.allocate('nb', { publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '2001:db8::5' }), /cannot bind the relay address 2001:db8::77 \(EADDRNOTAVAIL\): it must be an address of this machine/);
    assert.ok(performance.now() - t0 < 1000, 'one bind, not five hundred');
    assert.equal((await r.stats()).length, 0);
    // The IPv4 side it had opened first is closed again: its port is free for the next pair.
    const { portA } = await r.allocate('ok', { publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '127.0.0.1' });
    assert.equal(portA, 46400);
  } finally {
    await r.close();
  }
});

test('concurrent allocations on a full relay: exactly as many succeed as it has room for, whatever their families', async () => {
  // Four ports: room for two pairs. Requests of both families (when there is IPv6) race for them.
  const r = new Relay({ addresses: HAS_V6_LOOPBACK ? ['127.0.0.1', '::1'] : ['127.0.0.1'], portMin: 46500, portMax: 46503 });
  try {
    const v6 = HAS_V6_LOOPBACK ? '::1' : '127.0.0.1';
    const asks = Array.from({ length: 8 }, (_, i) => {
      const ip = i % 2 === 0 ? '127.0.0.1' : v6;
      return r.allocate(`cap${i}`, { publicKey: A, ip }, { publicKey: B, ip });
    });
    const got = await Promise.allSettled(asks);
    const ok = got.filter((g) => g.status === 'fulfilled');
    assert.equal(ok.length, 2, `room for two pairs, ${ok.length} allocated`);
    const ports = ok.flatMap((g) => (g.status === 'fulfilled' ? [g.value.portA, g.value.portB] : []));
    assert.equal(new Set(ports).size, 4, 'no port number is handed out twice, not even on the two families');
    for (const g of got) if (g.status === 'rejected') assert.match((g.reason as Error).message, /no free relay port in 46500-46503/);
    assert.equal((await r.stats()).length, 2);
    // Released room is room again.
    for (const s of await r.stats()) r.release(s.id);
    // A request for an id still being allocated is refused, not allocated twice.
    const first = r.allocate('dup', { publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: v6 });
    await assert.rejects(r.allocate('dup', { publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '127.0.0.1' }), /allocation dup exists/);
    await first;
    await r.allocate('again', { publicKey: A, ip: v6 }, { publicKey: B, ip: '127.0.0.1' });
    assert.equal((await r.stats()).length, 2);
  } finally {
    await r.close();
  }
});
