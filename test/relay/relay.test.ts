import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, test } from 'node:test';
import { generateKeyPair } from '../../src/core/wireguard/keys.js';
import { fakeInitiation, fakeTransport } from '../../src/lab/fake-wireguard.js';
import { Relay } from '../../src/relay/relay.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const initiation = fakeInitiation;
const transport = (n = 1400) => fakeTransport(n);

function socket(address: string): Promise<Socket & { got: Buffer[] }> {
  return new Promise((resolve) => {
    const s = createSocket('udp4') as Socket & { got: Buffer[] };
    s.got = [];
    s.on('message', (m) => s.got.push(m));
    s.bind(0, address, () => resolve(s));
  });
}

const A = generateKeyPair().publicKey;
const B = generateKeyPair().publicKey;
let relay: Relay;

before(() => {
  relay = new Relay({ address: '127.0.0.1', portMin: 46000, portMax: 46100, idleMs: 600 });
});
after(() => relay.close());

test('forwards a pair once both sides handshook, counts per direction, never elsewhere', async () => {
  const { portA, portB } = await relay.allocate('p1', { publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '127.0.0.1' });
  const a = await socket('127.0.0.1');
  const b = await socket('127.0.0.1');
  const bystander = await socket('127.0.0.1');
  try {
    a.send(initiation(B), portA, '127.0.0.1'); // A latches; B unknown yet: dropped
    await sleep(50);
    assert.equal(b.got.length, 0);
    b.send(initiation(A), portB, '127.0.0.1'); // B latches; forwarded to A
    await sleep(50);
    assert.equal(a.got.length, 1);
    for (let i = 0; i < 10; i++) a.send(transport(), portA, '127.0.0.1');
    await sleep(100);
    assert.equal(b.got.length, 10);
    assert.equal(bystander.got.length, 0);
    const st = (await relay.stats()).find((x) => x.id === 'p1')!;
    assert.deepEqual(st.aToB, { packets: 10, bytes: 10 * 1400 });
    assert.deepEqual(st.bToA, { packets: 1, bytes: 148 });
    assert.equal(st.dropped.notLatched, 1);
  } finally {
    [a, b, bystander].forEach((s) => s.close());
    relay.release('p1');
  }
});

test('abuse: garbage, unallocated and spoofed sources are dropped and counted; it keeps working', async () => {
  const { portA, portB } = await relay.allocate('p2', { publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '127.0.0.1' });
  const a = await socket('127.0.0.1');
  const b = await socket('127.0.0.1');
  const intruder = await socket('127.0.0.2'); // another address: not the node's IP
  const sameIp = await socket('127.0.0.1'); // the node's IP, another port, no valid handshake
  try {
    a.send(initiation(B), portA, '127.0.0.1');
    b.send(initiation(A), portB, '127.0.0.1');
    await sleep(50);
    a.got.length = 0;
    for (let i = 0; i < 50; i++) a.send(randomBytes(i * 7), portA, '127.0.0.1'); // garbage from the right source
    for (let i = 0; i < 20; i++) intruder.send(transport(), portA, '127.0.0.1'); // wrong source address
    intruder.send(initiation(B), portA, '127.0.0.1'); // even a valid handshake from elsewhere
    for (let i = 0; i < 5; i++) sameIp.send(transport(), portA, '127.0.0.1'); // cannot take over the latched port
    sameIp.send(initiation(A), portA, '127.0.0.1'); // mac1 made for the wrong responder
    await sleep(100);
    assert.equal(b.got.length, 0, 'nothing reached B');
    const st = (await relay.stats()).find((x) => x.id === 'p2')!;
    assert.equal(st.dropped.malformed, 50);
    assert.equal(st.dropped.wrongSource, 21);
    assert.equal(st.dropped.notLatched, 1 + 6, "A's first handshake (B not yet known), then the 6 from the other port");
    assert.equal(st.a.latched, `127.0.0.1:${a.address().port}`, 'the allocation still belongs to A');
    a.send(transport(), portA, '127.0.0.1');
    await sleep(50);
    assert.equal(b.got.length, 1, 'and still forwards');
  } finally {
    [a, b, intruder, sameIp].forEach((s) => s.close());
    relay.release('p2');
  }
});

test('a roaming node re-binds with a fresh handshake; an idle allocation expires', async () => {
  const { portA, portB } = await relay.allocate('p3', { publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '127.0.0.1' });
  const a1 = await socket('127.0.0.1');
  const a2 = await socket('127.0.0.1');
  const b = await socket('127.0.0.1');
  try {
    a1.send(initiation(B), portA, '127.0.0.1');
    b.send(initiation(A), portB, '127.0.0.1');
    await sleep(50);
    a2.send(initiation(B), portA, '127.0.0.1');
    await sleep(50);
    b.send(transport(), portB, '127.0.0.1');
    await sleep(50);
    assert.equal(a2.got.length, 1, 'B now reaches A at its new port');
    assert.equal(a1.got.length, 1, 'and no longer at the old one (only the first handshake went there)');
    await sleep(1500);
    assert.equal((await relay.stats()).some((x) => x.id === 'p3'), false, 'released after 600 ms idle');
  } finally {
    [a1, a2, b].forEach((s) => s.close());
  }
});
