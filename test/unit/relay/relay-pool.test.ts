import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { WebSocket } from 'ws';
import { createLogger } from '../../../src/core/log.js';
import { IpAddress } from '../../../src/core/net/address.js';
import { HostPort } from '../../../src/core/net/endpoint.js';
import type { RelayStats } from '../../../src/core/relay-protocol.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { builtinRelayAddresses } from '../../../src/hub/builtin-relay.js';
import { RelayPool, type RelayBackend, type RelayStreamReach, type SideTickets } from '../../../src/hub/relay-pool.js';
import { acceptRelay } from '../../../src/hub/remote-relay.js';
import type { RelaySideSpec } from '../../../src/relay/relay.js';
import { ticketHash } from '../../../src/core/stream/ticket.js';

const A = generateKeyPair().publicKey;
const B = generateKeyPair().publicKey;
const ip = (s: string) => IpAddress.parse(s);

/** A backend that allocates ports in order and records what it was asked. */
class FakeBackend implements RelayBackend {
  readonly live = new Map<string, { a: RelaySideSpec; b: RelaySideSpec }>();
  readonly updates: string[] = [];
  private next = 52000;
  fail?: string;
  stream: RelayStreamReach | null = null;
  readonly tickets = new Map<string, SideTickets | undefined>();

  constructor(
    readonly name: string,
    readonly addresses: readonly IpAddress[],
    public allocationCount = 0,
    readonly identity = name,
    readonly key = `${name}#1`,
  ) {}

  async allocate(id: string, a: RelaySideSpec, b: RelaySideSpec, tickets?: SideTickets): Promise<{ portA: number; portB: number }> {
    if (this.fail) throw new Error(this.fail);
    this.live.set(id, { a, b });
    this.tickets.set(id, tickets);
    this.allocationCount++;
    const portA = this.next++;
    return { portA, portB: this.next++ };
  }
  updateIp(id: string, publicKey: string, address: IpAddress): void {
    this.updates.push(`${id} ${publicKey === A ? 'A' : 'B'} ${address}`);
  }
  release(id: string): void {
    if (this.live.delete(id)) this.allocationCount--;
  }
  has(id: string): boolean {
    return this.live.has(id);
  }
  async stats(): Promise<RelayStats[]> {
    return [];
  }
}

const v4only = () => new FakeBackend('v4', [ip('203.0.113.2')]);
const v6only = () => new FakeBackend('v6', [ip('2001:db8::2')]);
const dual = (load = 0) => new FakeBackend('dual', [ip('203.0.113.3'), ip('2001:db8::3')], load);

test('a bridged pair goes to a relay with both families, one side on each: forA on IPv6, forB on IPv4', async () => {
  const pool = new RelayPool(() => undefined);
  const d = dual(5); // more loaded than the others, and still the only one that can take it
  pool.add(v4only());
  pool.add(v6only());
  pool.add(d);
  const r = await pool.tryAllocate({ publicKey: A, ip: '2001:db8:1::10' }, { publicKey: B, ip: ip('198.51.100.20') });
  assert.ok(r.allocation, r.reason);
  assert.equal(r.allocation.relay, 'dual');
  assert.equal(r.allocation.forA.toString(), '[2001:db8::3]:52000');
  assert.equal(r.allocation.forB.toString(), '203.0.113.3:52001');
  const sides = d.live.get(r.allocation.relayId);
  assert.ok(sides);
  assert.ok(sides.a.ip instanceof IpAddress && sides.a.ip.family === 6 && sides.b.ip.toString() === '198.51.100.20', 'the backend gets the node IPs as values');
  assert.deepEqual(
    pool.relays().find((x) => x.name === 'dual'),
    { name: 'dual', address: '203.0.113.3, 2001:db8::3', addresses: ['203.0.113.3', '2001:db8::3'], allocations: 6, stream: null },
  );
});

test('pairs of one family go to the least loaded relay that has it, on that family', async () => {
  const pool = new RelayPool(() => undefined);
  pool.add(v4only());
  pool.add(dual(3));
  const r6 = await pool.allocate({ publicKey: A, ip: '2001:db8:1::10' }, { publicKey: B, ip: '2001:db8:2::20' });
  assert.equal(r6?.relay, 'dual', 'the IPv4-only relay cannot take an IPv6 pair, however idle');
  assert.equal(r6?.forA.toString(), '[2001:db8::3]:52000');
  assert.equal(r6?.forB.toString(), '[2001:db8::3]:52001');
  const r4 = await pool.allocate({ publicKey: A, ip: '198.51.100.10' }, { publicKey: B, ip: '::ffff:198.51.100.20' });
  assert.equal(r4?.relay, 'v4');
  assert.equal(r4?.forB.toString(), '203.0.113.2:52001', 'an IPv4-mapped node IP is an IPv4 node');
});

test('when no relay can take a pair, the pool says why, relay by relay', async () => {
  const pool = new RelayPool(() => undefined);
  assert.match((await pool.tryAllocate({ publicKey: A, ip: '198.51.100.10' }, { publicKey: B, ip: '198.51.100.20' })).reason ?? '', /the pool is empty/);
  const full = dual();
  full.fail = 'no free relay port in 52000-52999';
  pool.add(v4only());
  pool.add(v6only());
  pool.add(full);
  const r = await pool.tryAllocate({ publicKey: A, ip: '2001:db8:1::10' }, { publicKey: B, ip: '198.51.100.20' });
  assert.equal(r.allocation, undefined);
  assert.match(r.reason ?? '', /^no relay could take a bridged pair \(A on IPv6, B on IPv4\): /);
  assert.match(r.reason ?? '', /v4 has no IPv6 address \(it has 203\.0\.113\.2\)/);
  assert.match(r.reason ?? '', /v6 has no IPv4 address \(it has 2001:db8::2\)/);
  assert.match(r.reason ?? '', /dual: no free relay port/);
  assert.equal(await pool.allocate({ publicKey: A, ip: '2001:db8:1::10' }, { publicKey: B, ip: '198.51.100.20' }), undefined);
  assert.match((await pool.tryAllocate({ publicKey: A, ip: 'nonsense' }, { publicKey: B, ip: '198.51.100.20' })).reason ?? '', /side A's node IP "nonsense" is not an IP address/);
});

test("a node's new IP of the same family goes to the relay; of the other family, the allocation is released and the pair moves", async () => {
  const gone: string[] = [];
  const pool = new RelayPool((id) => gone.push(id));
  const d = dual();
  pool.add(d);
  const x = await pool.allocate({ publicKey: A, ip: '2001:db8:1::10' }, { publicKey: B, ip: '198.51.100.20' });
  assert.ok(x);
  pool.updateIp(A, '2001:db8:1::11');
  pool.updateIp(B, ip('198.51.100.21'));
  assert.deepEqual(d.updates, [`${x.relayId} A 2001:db8:1::11`, `${x.relayId} B 198.51.100.21`]);
  assert.deepEqual(gone, []);
  // A's node now reaches the hub over IPv4: it was told the relay's IPv6 endpoint.
  pool.updateIp(A, '198.51.100.10');
  assert.deepEqual(gone, [x.relayId]);
  assert.equal(d.has(x.relayId), false, 'released on the relay too');
  assert.equal(pool.alive(x.relayId), false);
  pool.updateIp(A, '198.51.100.11');
  assert.equal(d.updates.length, 2, 'nothing left to update');
});

test("a backend that refuses a new IP releases the allocation there too, and the pair moves", async () => {
  const gone: string[] = [];
  const pool = new RelayPool((id) => gone.push(id));
  const d = dual();
  d.updateIp = () => {
    throw new Error('refused');
  };
  pool.add(d);
  const x = await pool.allocate({ publicKey: A, ip: '198.51.100.10' }, { publicKey: B, ip: '198.51.100.20' });
  assert.ok(x);
  pool.updateIp(B, '198.51.100.21');
  assert.deepEqual(gone, [x.relayId]);
  assert.equal(d.has(x.relayId), false);
});

test("the built-in relay's addresses: --relay-address as given, else the hub endpoints that are IP addresses, one per family", () => {
  const hp = (s: string) => HostPort.parse(s);
  assert.deepEqual(builtinRelayAddresses(undefined, [hp('[2001:db8::1]:51820'), hp('203.0.113.1:51820')]).map(String), ['203.0.113.1', '2001:db8::1']);
  assert.deepEqual(builtinRelayAddresses(undefined, [hp('vpn.example.org:51820'), hp('[2001:db8::1]:51820')]).map(String), ['2001:db8::1'], 'a DNS name gives no address to bind');
  assert.deepEqual(builtinRelayAddresses(undefined, [hp('vpn.example.org:51820')]), []);
  assert.deepEqual(builtinRelayAddresses([], [hp('203.0.113.1:51820')]).map(String), ['203.0.113.1']);
  assert.deepEqual(builtinRelayAddresses([ip('2001:db8::9'), ip('198.51.100.9')], [hp('203.0.113.1:51820')]).map(String), ['198.51.100.9', '2001:db8::9'], 'given addresses win');
  assert.throws(() => builtinRelayAddresses([ip('::1')], []), /^Error: --relay-address: ::1 is a loopback address/);
  assert.throws(() => builtinRelayAddresses([ip('fd00::9')], []), /--relay-address: fd00::9 is a unique-local address/);
  assert.throws(() => builtinRelayAddresses([ip('198.51.100.9'), ip('198.51.100.8')], []), /--relay-address: 198\.51\.100\.9 and 198\.51\.100\.8 are both IPv4/);
});

/** The hub's end of a relay's WebSocket: what acceptRelay() needs of it. */
class FakeWs extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  sent: unknown[] = [];
  send(text: string): void {
    this.sent.push(JSON.parse(text));
  }
}

test('a remote relay joins the pool with the addresses of its hello; a hello with a loopback address is refused', async () => {
  const pool = new RelayPool(() => undefined);
  const log = createLogger('test', 'silent');
  const ws = new FakeWs();
  acceptRelay({ name: 'rly1', publicKey: generateKeyPair().publicKey }, ws as unknown as WebSocket, pool, () => undefined, log);
  ws.emit('message', Buffer.from(JSON.stringify({ type: 'hello', addresses: ['::1'], portMin: 53000, portMax: 53999 })));
  assert.equal(pool.size, 0, 'refused: nodes could never reach ::1');
  ws.emit('message', Buffer.from(JSON.stringify({ type: 'hello', addresses: ['203.0.113.4', '2001:db8::4'], portMin: 53000, portMax: 53999 })));
  assert.deepEqual(pool.relays(), [{ name: 'rly1', address: '203.0.113.4, 2001:db8::4', addresses: ['203.0.113.4', '2001:db8::4'], allocations: 0, stream: null }]);
  const pending = pool.tryAllocate({ publicKey: A, ip: '2001:db8:1::10' }, { publicKey: B, ip: '198.51.100.20' });
  const ask = ws.sent[0] as { type: string; id: string; a: { ip: string }; b: { ip: string } };
  assert.deepEqual([ask.type, ask.a.ip, ask.b.ip], ['allocate', '2001:db8:1::10', '198.51.100.20']);
  ws.emit('message', Buffer.from(JSON.stringify({ type: 'allocated', id: ask.id, portA: 53000, portB: 53001 })));
  const r = await pending;
  assert.deepEqual([r.allocation?.forA.toString(), r.allocation?.forB.toString()], ['[2001:db8::4]:53000', '203.0.113.4:53001']);
  ws.emit('close');
  assert.equal(pool.size, 0);
});

/** What a relay connection sends the hub, as the relay would. */
const say = (ws: FakeWs, m: object) => ws.emit('message', Buffer.from(JSON.stringify(m)));
const hello = { type: 'hello', addresses: ['203.0.113.4'], portMin: 53000, portMax: 53999 };

/** A logger that keeps its warnings (the only level these tests read). */
function captureLog(): { log: ReturnType<typeof createLogger>; lines: { msg: string; suppressed?: number }[] } {
  const lines: { msg: string; suppressed?: number }[] = [];
  const quiet = createLogger('test', 'silent');
  const log = Object.assign(Object.create(quiet) as typeof quiet, { warn: (obj: object, msg: string) => void lines.push({ ...obj, msg }) });
  return { log, lines };
}

test('finding 8: a relay node called "builtin" cannot take the place of the hub\'s own relay', async () => {
  const pool = new RelayPool(() => undefined);
  const own = new FakeBackend('builtin', [ip('203.0.113.1')], 0, 'builtin', 'builtin');
  pool.add(own);
  const x = await pool.allocate({ publicKey: A, ip: '198.51.100.10' }, { publicKey: B, ip: '198.51.100.20' });
  assert.ok(x);
  const ws = new FakeWs();
  let closed: [number, string] | undefined;
  (ws as unknown as { close: (code: number, why: string) => void }).close = (code, why) => void (closed = [code, why]);
  acceptRelay({ name: 'builtin', publicKey: generateKeyPair().publicKey }, ws as unknown as WebSocket, pool, () => undefined, createLogger('test', 'silent'));
  say(ws, hello);
  assert.deepEqual(pool.relays().map((r) => [r.name, r.address]), [['builtin', '203.0.113.1']], "the hub's relay is still the one registered");
  assert.equal(pool.alive(x.relayId), true, 'and its pairs stay where they are');
  assert.equal(closed?.[0], 4003);
  assert.match(closed?.[1] ?? '', /may not be called "builtin"/);
  assert.throws(() => pool.add(new FakeBackend('builtin', [ip('203.0.113.9')], 0, 'some-key')), /a relay node may not be called "builtin": that is the hub's own relay; remove the node and add it again under another name/);
});

test("finding 8: a stale connection's late close leaves the relay's live connection registered", async () => {
  const gone: string[] = [];
  const pool = new RelayPool((id) => gone.push(id));
  const log = createLogger('test', 'silent');
  const key = generateKeyPair().publicKey;
  const node = { name: 'rly1', publicKey: key };
  const old = new FakeWs();
  let oldClosed = false;
  (old as unknown as { close: () => void }).close = () => void (oldClosed = true);
  acceptRelay(node, old as unknown as WebSocket, pool, () => undefined, log);
  say(old, hello);
  const first = pool.tryAllocate({ publicKey: A, ip: '198.51.100.10' }, { publicKey: B, ip: '198.51.100.20' });
  const ask1 = old.sent[0] as { id: string };
  say(old, { type: 'allocated', id: ask1.id, portA: 53000, portB: 53001 });
  const x = (await first).allocation;
  assert.ok(x);

  // The relay reconnects (its old connection half-open): the new registration replaces the old,
  // whose pairs move, and the old connection is closed.
  const fresh = new FakeWs();
  acceptRelay(node, fresh as unknown as WebSocket, pool, () => undefined, log);
  say(fresh, { ...hello, addresses: ['203.0.113.5'] });
  assert.deepEqual(gone, [x.relayId], "the old connection's allocation is gone with it");
  assert.equal(oldClosed, true);
  assert.deepEqual(pool.relays().map((r) => [r.name, r.address]), [['rly1', '203.0.113.5']]);
  const second = pool.tryAllocate({ publicKey: A, ip: '198.51.100.10' }, { publicKey: B, ip: '198.51.100.20' });
  const ask2 = fresh.sent[0] as { id: string };
  say(fresh, { type: 'allocated', id: ask2.id, portA: 53000, portB: 53001 });
  const y = (await second).allocation;
  assert.ok(y);

  // The old connection's close arrives late, and what it still says is not acted on.
  say(old, { type: 'released', id: ask1.id });
  old.emit('close');
  assert.deepEqual(pool.relays().map((r) => r.name), ['rly1'], 'the live connection is still registered');
  assert.equal(pool.alive(y.relayId), true, 'and its pair is still alive');
  assert.deepEqual(gone, [x.relayId]);
  fresh.emit('close');
  assert.equal(pool.size, 0);
  assert.deepEqual(gone, [x.relayId, y.relayId]);
});

test("a relay's claims are checked against what the hub allocated: ports in its range, latched only at the side's node IP; drops are logged, throttled", async () => {
  const pool = new RelayPool(() => undefined);
  const { log, lines } = captureLog();
  const learned: string[] = [];
  const ws = new FakeWs();
  acceptRelay({ name: 'rly1', publicKey: generateKeyPair().publicKey }, ws as unknown as WebSocket, pool, (k, e) => learned.push(`${k === A ? 'A' : 'B'} ${e}`), log);
  say(ws, { ...hello, portMin: 53000, portMax: 53009 });

  // Ports outside the relay's range: refused, and released on the relay.
  const bad = pool.tryAllocate({ publicKey: A, ip: '198.51.100.10' }, { publicKey: B, ip: '198.51.100.20' });
  const ask1 = ws.sent.at(-1) as { id: string };
  say(ws, { type: 'allocated', id: ask1.id, portA: 22, portB: 53001 });
  const r1 = await bad;
  assert.equal(r1.allocation, undefined);
  assert.match(r1.reason ?? '', /answered ports 22 and 53001, which are not two ports of its range 53000-53009/);
  assert.deepEqual(ws.sent.at(-1), { type: 'release', id: ask1.id });

  const good = pool.tryAllocate({ publicKey: A, ip: '198.51.100.10' }, { publicKey: B, ip: '198.51.100.20' });
  const ask2 = ws.sent.at(-1) as { id: string };
  say(ws, { type: 'allocated', id: ask2.id, portA: 53000, portB: 53001 });
  assert.ok((await good).allocation);
  const C = generateKeyPair().publicKey;
  say(ws, { type: 'latched', id: ask2.id, publicKey: A, endpoint: '192.0.2.66:4000' }); // not A's IP
  say(ws, { type: 'latched', id: ask2.id, publicKey: C, endpoint: '198.51.100.10:4000' }); // not a side
  say(ws, { type: 'latched', id: 'ffffffffffffffff', publicKey: A, endpoint: '198.51.100.10:4000' }); // no such allocation
  assert.deepEqual(learned, [], 'none of these is learned');
  say(ws, { type: 'latched', id: ask2.id, publicKey: A, endpoint: '198.51.100.10:4000' });
  say(ws, { type: 'latched', id: ask2.id, publicKey: B, endpoint: '198.51.100.20:4001' });
  assert.deepEqual(learned, ['A 198.51.100.10:4000', 'B 198.51.100.20:4001']);
  // A node's new IP: the check follows it.
  pool.updateIp(A, '198.51.100.11');
  say(ws, { type: 'latched', id: ask2.id, publicKey: A, endpoint: '198.51.100.10:4002' });
  say(ws, { type: 'latched', id: ask2.id, publicKey: A, endpoint: '198.51.100.11:4002' });
  assert.deepEqual(learned.at(-1), 'A 198.51.100.11:4002');
  assert.equal(learned.length, 3);
  const drops = lines.filter((l) => l.msg.startsWith('relay message dropped'));
  assert.equal(drops.length, 1, `one line for five drops within the throttle window: ${JSON.stringify(lines)}`);

  // A relay that floods latched events is cut off at the bucket, not followed.
  for (let i = 0; i < 5000; i++) say(ws, { type: 'latched', id: ask2.id, publicKey: B, endpoint: `198.51.100.20:${5000 + (i % 1000)}` });
  assert.ok(learned.length < 3 + 2100, `${learned.length - 3} of 5000 latched events were acted on`);
  assert.equal(lines.filter((l) => l.msg.startsWith('relay message dropped')).length, 1, 'and the flood costs no more log lines');
});

test('a remote relay holds as many pairs as its port range has room for; concurrent requests beyond it are refused without asking', async () => {
  const pool = new RelayPool(() => undefined);
  const ws = new FakeWs();
  acceptRelay({ name: 'small', publicKey: generateKeyPair().publicKey }, ws as unknown as WebSocket, pool, () => undefined, createLogger('test', 'silent'));
  say(ws, { ...hello, portMin: 53000, portMax: 53004 }); // five ports: two pairs
  const asks = Array.from({ length: 5 }, () => pool.tryAllocate({ publicKey: A, ip: '198.51.100.10' }, { publicKey: B, ip: '198.51.100.20' }));
  assert.equal(ws.sent.length, 2, 'only two requests reach the relay');
  ws.sent.forEach((m, i) => say(ws, { type: 'allocated', id: (m as { id: string }).id, portA: 53000 + 2 * i, portB: 53001 + 2 * i }));
  const got = await Promise.all(asks);
  assert.equal(got.filter((g) => g.allocation).length, 2);
  for (const g of got.filter((x) => !x.allocation)) assert.match(g.reason ?? '', /relay small is full \(2 pairs in ports 53000-53004\)/);
});

const PIN = 'sha256/' + Buffer.alloc(32, 7).toString('base64');

test('a pair with a side on a TLS stream skips relays without a stream side, and says so when none has one', async () => {
  const pool = new RelayPool(() => undefined);
  const plain = new FakeBackend('plain', [ip('203.0.113.2')]);
  pool.add(plain);
  // A UDP pair still goes to it.
  assert.equal((await pool.tryAllocate({ publicKey: A, ip: '198.51.100.1' }, { publicKey: B, ip: '198.51.100.2' })).allocation?.relay, 'plain');
  const none = await pool.tryAllocate({ publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '198.51.100.2' });
  assert.equal(none.allocation, undefined);
  assert.match(none.reason ?? '', /plain has no stream side \(it runs with --no-tcp, or is of an older release\), and a side rides a TLS stream/);
  // The least loaded relay is passed over when it cannot carry a stream side.
  const streamed = new FakeBackend('streamed', [ip('203.0.113.3')], 5);
  streamed.stream = { kind: 'own', port: 8443, pin: PIN };
  pool.add(streamed);
  const got = await pool.tryAllocate({ publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '198.51.100.2' });
  assert.equal(got.allocation?.relay, 'streamed');
  assert.equal(plain.live.size, 1, 'nothing more was allocated on the relay without a stream side');
});

test('tickets: one per stream side on a relay with its own stream side, none on the hub\'s own relay nor for UDP sides', async () => {
  const pool = new RelayPool(() => undefined);
  const own = new FakeBackend('own', [ip('203.0.113.3')]);
  own.stream = { kind: 'own', port: 8443, pin: PIN };
  pool.add(own);
  const r = (await pool.tryAllocate({ publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '198.51.100.2' })).allocation!;
  assert.ok(r.streamA, 'side A rides the stream: it gets a grant');
  assert.equal(r.streamB, undefined, 'side B is on UDP: no ticket');
  assert.equal(r.streamA.endpoint.toString(), '203.0.113.3:8443');
  assert.equal(r.streamA.pin, PIN);
  assert.match(r.streamA.ticket, /^[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(own.tickets.get(r.relayId), { a: r.streamA.ticket });
  const both = (await pool.tryAllocate({ publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '127.0.0.1' })).allocation!;
  assert.notEqual(both.streamA?.ticket, both.streamB?.ticket, 'each side its own ticket');
  assert.notEqual(both.streamA?.ticket, r.streamA.ticket, 'each allocation its own ticket');

  const hubPool = new RelayPool(() => undefined);
  const builtin = new FakeBackend('hubs', [ip('203.0.113.4')]);
  builtin.stream = { kind: 'hub' };
  hubPool.add(builtin);
  const h = (await hubPool.tryAllocate({ publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '198.51.100.2' })).allocation!;
  assert.equal(h.streamA, undefined, "the hub's stream side authenticates the node's token: no ticket");
  assert.equal(builtin.tickets.get(h.relayId), undefined);
});

test('a remote relay with a stream side gets only each ticket\'s digest, bound to the allocation and side', async () => {
  const pool = new RelayPool(() => undefined);
  const ws = new FakeWs();
  acceptRelay({ name: 'rly2', publicKey: generateKeyPair().publicKey }, ws as unknown as WebSocket, pool, () => undefined, createLogger('test', 'silent'));
  say(ws, { ...hello, stream: { port: 443, pin: PIN } });
  assert.equal(pool.relays()[0]?.stream, `TCP 443, TLS key ${PIN}`);
  const pending = pool.tryAllocate({ publicKey: A, ip: '127.0.0.1' }, { publicKey: B, ip: '198.51.100.20' });
  const ask = ws.sent[0] as { id: string; a: { ticket?: { hash: string; firstUseMs: number } }; b: { ticket?: unknown } };
  say(ws, { type: 'allocated', id: ask.id, portA: 53000, portB: 53001 });
  const r = (await pending).allocation!;
  const ticket = r.streamA!.ticket;
  assert.ok(ask.a.ticket);
  assert.equal(ask.a.ticket.hash, ticketHash(ask.id, A, ticket));
  assert.equal(ask.b.ticket, undefined);
  assert.ok(!JSON.stringify(ws.sent).includes(ticket), 'the ticket itself never reaches the relay');
  assert.equal(r.streamA!.endpoint.toString(), '203.0.113.4:443');
  const stream = { connections: 1, nodes: 1, closes: { 'bad-ticket': 2, 'auth-timeout': 1 }, up: { packets: 3, bytes: 300 }, down: { packets: 2, bytes: 200 }, dropped: 0 };
  say(ws, { type: 'stats', allocations: [], stream });
  assert.deepEqual(pool.relays()[0]?.streamStats, stream, "the relay's stream counters reach the hub's status");
});
