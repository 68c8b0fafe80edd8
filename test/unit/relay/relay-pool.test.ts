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
import { RelayPool, type RelayBackend } from '../../../src/hub/relay-pool.js';
import { acceptRelay } from '../../../src/hub/remote-relay.js';
import type { RelaySideSpec } from '../../../src/relay/relay.js';

const A = generateKeyPair().publicKey;
const B = generateKeyPair().publicKey;
const ip = (s: string) => IpAddress.parse(s);

/** A backend that allocates ports in order and records what it was asked. */
class FakeBackend implements RelayBackend {
  readonly live = new Map<string, { a: RelaySideSpec; b: RelaySideSpec }>();
  readonly updates: string[] = [];
  private next = 52000;
  fail?: string;

  constructor(
    readonly name: string,
    readonly addresses: readonly IpAddress[],
    public allocationCount = 0,
  ) {}

  async allocate(id: string, a: RelaySideSpec, b: RelaySideSpec): Promise<{ portA: number; portB: number }> {
    if (this.fail) throw new Error(this.fail);
    this.live.set(id, { a, b });
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
    { name: 'dual', address: '203.0.113.3, 2001:db8::3', addresses: ['203.0.113.3', '2001:db8::3'], allocations: 6 },
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
  acceptRelay('rly1', ws as unknown as WebSocket, pool, () => undefined, log);
  ws.emit('message', Buffer.from(JSON.stringify({ type: 'hello', addresses: ['::1'], portMin: 53000, portMax: 53999 })));
  assert.equal(pool.size, 0, 'refused: nodes could never reach ::1');
  ws.emit('message', Buffer.from(JSON.stringify({ type: 'hello', addresses: ['203.0.113.4', '2001:db8::4'], portMin: 53000, portMax: 53999 })));
  assert.deepEqual(pool.relays(), [{ name: 'rly1', address: '203.0.113.4, 2001:db8::4', addresses: ['203.0.113.4', '2001:db8::4'], allocations: 0 }]);
  const pending = pool.tryAllocate({ publicKey: A, ip: '2001:db8:1::10' }, { publicKey: B, ip: '198.51.100.20' });
  const ask = ws.sent[0] as { type: string; id: string; a: { ip: string }; b: { ip: string } };
  assert.deepEqual([ask.type, ask.a.ip, ask.b.ip], ['allocate', '2001:db8:1::10', '198.51.100.20']);
  ws.emit('message', Buffer.from(JSON.stringify({ type: 'allocated', id: ask.id, portA: 53000, portB: 53001 })));
  const r = await pending;
  assert.deepEqual([r.allocation?.forA.toString(), r.allocation?.forB.toString()], ['[2001:db8::4]:53000', '203.0.113.4:53001']);
  ws.emit('close');
  assert.equal(pool.size, 0);
});
