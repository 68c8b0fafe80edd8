import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { decode, pathCommandSchema } from '../../../src/core/protocol.js';
import { hubToRelaySchema, relayToHubSchema } from '../../../src/core/relay-protocol.js';
import { decodeShimMessage } from '../../../src/core/stream/messages.js';
import { newTicket, ticketHash, TICKET_FIRST_USE_MS } from '../../../src/core/stream/ticket.js';
import { generateTlsIdentity, type TlsIdentity } from '../../../src/core/stream/tls-identity.js';
import { fakeInitiation, fakeResponse, senderIndex } from '../../../src/lab/fake-wireguard.js';
import { Relay } from '../../../src/relay/relay.js';
import { StreamServer } from '../../../src/relay/stream-server.js';
import { TicketBook } from '../../../src/relay/ticket-book.js';
import { FakeClock } from '../fake-clock.js';
import { node, RawClient, silent, udpPeer, until } from '../stream-fixtures.js';

const A = node();
const B = node();
const ID1 = '00000000000000a1';
const ID2 = '00000000000000a2';

describe('ticket book: what a relay on its own machine accepts', () => {
  function book() {
    const clock = new FakeClock();
    const b = new TicketBook(clock);
    const ta = newTicket();
    const tb = newTicket();
    b.add(ID1, A.publicKey, ticketHash(ID1, A.publicKey, ta), TICKET_FIRST_USE_MS);
    b.add(ID1, B.publicKey, ticketHash(ID1, B.publicKey, tb), TICKET_FIRST_USE_MS);
    return { clock, b, ta, tb };
  }

  test('the right ticket names its side; a wrong or made-up one names none', () => {
    const { b, ta, tb } = book();
    assert.deepEqual(b.verify(ID1, ta), { ok: true, publicKey: A.publicKey });
    assert.deepEqual(b.verify(ID1, tb), { ok: true, publicKey: B.publicKey });
    assert.deepEqual(b.verify(ID1, newTicket()), { ok: false, reason: 'wrong' });
    assert.deepEqual(b.verify(ID1, 'not a ticket'), { ok: false, reason: 'wrong' });
    assert.deepEqual(b.verify(ID2, ta), { ok: false, reason: 'unknown' }, 'no tickets for an allocation it does not hold');
  });

  test("another allocation's ticket does not open this one, nor does the other side's for a stream that speaks for this node", () => {
    const { b, ta, tb } = book();
    const t2 = newTicket();
    b.add(ID2, A.publicKey, ticketHash(ID2, A.publicKey, t2), TICKET_FIRST_USE_MS);
    assert.deepEqual(b.verify(ID1, t2), { ok: false, reason: 'wrong' }, "ID2's ticket presented for ID1");
    assert.deepEqual(b.verify(ID2, ta), { ok: false, reason: 'wrong' }, "ID1's ticket presented for ID2");
    assert.deepEqual(b.verify(ID1, tb, A.publicKey), { ok: false, reason: 'wrong' }, "B's ticket on A's stream");
    assert.deepEqual(b.verify(ID1, ta, A.publicKey), { ok: true, publicKey: A.publicKey });
  });

  test('a ticket not presented within its first-use time has expired; one presented in time lasts as long as its allocation', async () => {
    const { clock, b, ta, tb } = book();
    await clock.advance(TICKET_FIRST_USE_MS - 1);
    assert.equal(b.verify(ID1, ta).ok, true, 'just in time');
    await clock.advance(2);
    assert.deepEqual(b.verify(ID1, tb), { ok: false, reason: 'expired' });
    await clock.advance(3_600_000);
    assert.equal(b.verify(ID1, ta).ok, true, 'a reconnecting shim presents it again an hour later');
    b.release(ID1);
    assert.deepEqual(b.verify(ID1, ta), { ok: false, reason: 'unknown' }, 'gone with the allocation');
  });
});

describe('schemas: what carries tickets and stream sides', () => {
  const pin = 'sha256/' + Buffer.alloc(32, 1).toString('base64');
  const hello = { type: 'hello', addresses: ['203.0.113.9'], portMin: 52000, portMax: 52999 };

  test("a relay's hello: its stream side's port and pin, each refused with the field named", () => {
    const ok = decode(relayToHubSchema, JSON.stringify({ ...hello, stream: { port: 443, pin } }), 'hello');
    assert.deepEqual(ok.type === 'hello' && ok.stream, { port: 443, pin });
    const without = decode(relayToHubSchema, JSON.stringify(hello), 'hello');
    assert.equal(without.type === 'hello' && without.stream, null, 'a relay without a stream side (or of an older release)');
    assert.throws(() => decode(relayToHubSchema, JSON.stringify({ ...hello, stream: { port: 443, pin: 'sha256/abc' } }), 'hello'), /stream\.pin: must be sha256\/ and the base64 of 32 bytes/);
    assert.throws(() => decode(relayToHubSchema, JSON.stringify({ ...hello, stream: { port: 70000, pin } }), 'hello'), /stream\.port: must be a TCP\/UDP port/);
    assert.throws(() => decode(relayToHubSchema, JSON.stringify({ ...hello, stream: { port: 443, pin, extra: 1 } }), 'hello'), /stream/);
  });

  test("the hub's allocate: a side's ticket digest, refused when oversized or not base64url, with the field named", () => {
    const side = (ticket?: object) => ({ publicKey: A.publicKey, ip: '127.0.0.1', ...(ticket ? { ticket } : {}) });
    const hash = ticketHash(ID1, A.publicKey, newTicket());
    const m = decode(hubToRelaySchema, JSON.stringify({ type: 'allocate', id: ID1, a: side({ hash, firstUseMs: 60_000 }), b: { publicKey: B.publicKey, ip: '198.51.100.2' } }), 'allocate');
    assert.equal(m.type === 'allocate' && m.a.ticket?.hash, hash);
    const bad = (ticket: object) => () => decode(hubToRelaySchema, JSON.stringify({ type: 'allocate', id: ID1, a: side(ticket), b: side() }), 'allocate');
    assert.throws(bad({ hash: hash + 'A'.repeat(1000), firstUseMs: 60_000 }), /a\.ticket\.hash: must be 43 characters of base64url/);
    assert.throws(bad({ hash, firstUseMs: 10 }), /a\.ticket\.firstUseMs: must be at least 1000/);
  });

  test("the shim's open: a ticket of 32 bytes of base64url, nothing larger", () => {
    const ticket = newTicket();
    const m = decodeShimMessage(JSON.stringify({ type: 'open', channel: 1, to: { kind: 'allocation', id: ID1 }, ticket }));
    assert.equal(m.type === 'open' && m.ticket, ticket);
    assert.throws(() => decodeShimMessage(JSON.stringify({ type: 'open', channel: 1, to: { kind: 'allocation', id: ID1 }, ticket: ticket.repeat(100) })), /ticket: must be 43 characters of base64url \(the relay ticket/);
  });

  test("the agent's relay path: the relay's stream side and the ticket, only on a tcp-relay path", () => {
    const path = (extra: object) => JSON.stringify({ type: 'path', step: 'use', publicKey: B.publicKey, seq: 1, path: { via: 'relay', endpoint: '203.0.113.9:52000', relayId: ID1, relay: 'r1', ...extra } });
    const stream = { endpoint: '203.0.113.9:443', pin, ticket: newTicket() };
    const m = decode(pathCommandSchema, path({ kind: 'tcp-relay', stream }), 'path');
    assert.ok(m.step === 'use' && m.path.via === 'relay' && m.path.stream?.endpoint.toString() === '203.0.113.9:443');
    assert.throws(() => decode(pathCommandSchema, path({ stream }), 'path'), /path\.stream: only on a tcp-relay path/);
    assert.throws(() => decode(pathCommandSchema, path({ kind: 'tcp-relay', stream: { ...stream, pin: 'x' } }), 'path'), /path\.stream\.pin: must be sha256\//);
    assert.throws(() => decode(pathCommandSchema, path({ kind: 'tcp-relay', stream: { ...stream, ticket: 'x'.repeat(500) } }), 'path'), /path\.stream\.ticket: must be 43 characters/);
  });
});

/**
 * Long enough for a TLS handshake on a loaded 2-core runner (400 ms was not: a connect failed with
 * ECONNRESET when the deadline closed it mid-handshake), short enough to wait out in a test.
 */
const HELLO_DEADLINE_MS = 1500;

describe("a relay's stream side with tickets (no tokens)", () => {
  let identity: TlsIdentity;
  let relay: Relay;
  let book: TicketBook;
  let server: StreamServer;
  let port: number;
  const clients: RawClient[] = [];
  let n = 0;
  const nextId = () => (0xb000 + n++).toString(16).padStart(16, '0');

  before(async () => {
    identity = await generateTlsIdentity();
    relay = new Relay({ addresses: ['127.0.0.1'], portMin: 46600, portMax: 46640, idleMs: 60_000 });
    book = new TicketBook(new FakeClock());
    server = new StreamServer({ tls: identity, tickets: (id, t, k) => book.verify(id, t, k), streamSide: (id, k) => relay.streamSide(id, k), limits: { helloDeadlineMs: HELLO_DEADLINE_MS }, log: silent });
    port = await server.listen('127.0.0.1', 0);
  });
  after(async () => {
    clients.forEach((c) => c.close());
    await server.close();
    await relay.close();
  });

  async function allocation(): Promise<{ id: string; ta: string; tb: string; portB: number }> {
    const id = nextId();
    const { portB } = await relay.allocate(id, { publicKey: A.publicKey, ip: '127.0.0.1' }, { publicKey: B.publicKey, ip: '127.0.0.2' });
    const ta = newTicket();
    const tb = newTicket();
    book.add(id, A.publicKey, ticketHash(id, A.publicKey, ta), TICKET_FIRST_USE_MS);
    book.add(id, B.publicKey, ticketHash(id, B.publicKey, tb), TICKET_FIRST_USE_MS);
    return { id, ta, tb, portB };
  }

  async function connect(): Promise<RawClient> {
    const c = await RawClient.connect(port, identity.pin);
    clients.push(c);
    return c;
  }

  test('an open with the right ticket is the credential: the channel forwards that side of that allocation, latched by handshake', async () => {
    const { id, ta, portB } = await allocation();
    const b = await udpPeer('127.0.0.2');
    const c = await connect();
    c.send({ type: 'open', channel: 3, to: { kind: 'allocation', id }, ticket: ta });
    await c.waitControl('opened');
    assert.equal(c.controls()[0]?.type, 'welcome');
    c.data(3, fakeInitiation(B.publicKey));
    const ib = fakeInitiation(A.publicKey);
    await until(() => {
      b.send(ib, portB, '127.0.0.1');
      return c.datagrams(3).length > 0;
    }, "B's initiation on A's stream");
    c.data(3, fakeResponse(B.publicKey, senderIndex(ib)));
    await until(() => b.got.length > 0, "A's response at B");
    b.close();
    c.close();
  });

  test('a wrong ticket, or one of another allocation, closes the stream, and each close is counted', async () => {
    const one = await allocation();
    const two = await allocation();
    const before = server.stats().closes['bad-ticket'];
    const wrong = await connect();
    wrong.send({ type: 'open', channel: 0, to: { kind: 'allocation', id: one.id }, ticket: newTicket() });
    await until(() => wrong.ended, 'the stream with a wrong ticket closed');
    assert.match(JSON.stringify(wrong.controls()), /not the hub's ticket/);
    const other = await connect();
    other.send({ type: 'open', channel: 0, to: { kind: 'allocation', id: one.id }, ticket: two.ta });
    await until(() => other.ended, "the stream with another allocation's ticket closed");
    // A stream that speaks for A may not open B's side with B's ticket.
    const side = await connect();
    side.send({ type: 'open', channel: 0, to: { kind: 'allocation', id: one.id }, ticket: one.ta });
    await side.waitControl('opened');
    side.send({ type: 'open', channel: 1, to: { kind: 'allocation', id: two.id }, ticket: two.tb });
    await until(() => side.ended, "the stream that presented the other side's ticket closed");
    await until(() => server.stats().closes['bad-ticket'] === before + 3, 'three bad-ticket closes counted');
    assert.ok(!JSON.stringify(side.controls()).includes(two.tb), 'the refusal never repeats the ticket');
  });

  test('a hello with a token, or nothing at all, gets nothing: closed at once, or within the deadline', async () => {
    const before = server.stats().closes;
    const hello = await connect();
    hello.hello(A);
    await until(() => hello.ended, 'a hello closed');
    assert.match(JSON.stringify(hello.controls()), /knows no node tokens: open each allocation with the ticket from the hub's path command/);
    const idle = await connect();
    await until(() => idle.ended, 'a silent connection closed', HELLO_DEADLINE_MS + 4000);
    const after = server.stats().closes;
    assert.equal(after['bad-auth'], before['bad-auth'] + 1);
    assert.equal(after['auth-timeout'], before['auth-timeout'] + 1);
  });

  test('an allocation this relay does not hold: that channel is refused, the stream is not a credential yet', async () => {
    const c = await connect();
    c.send({ type: 'open', channel: 5, to: { kind: 'allocation', id: nextId() }, ticket: newTicket() });
    const closed = await c.waitControl('closed');
    assert.match(JSON.stringify(closed), /no ticket for allocation/);
    await until(() => c.ended, 'closed at the hello deadline', HELLO_DEADLINE_MS + 4000);
  });
});
