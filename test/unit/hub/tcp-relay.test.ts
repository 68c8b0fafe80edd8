import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { tcpRelay } from '../../../src/core/candidates/tcp-relay.js';
import { Prefixed } from '../../../src/core/net/cidr.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { pathCommandSchema, type PathCommand } from '../../../src/core/protocol.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { NatKnowledge } from '../../../src/hub/nat-knowledge.js';
import { PairPaths } from '../../../src/hub/pairs/coordinator.js';
import { FakeClock } from '../fake-clock.js';

/** The hub's pair decisions when a side rides the TLS stream (the hub's device sees it on loopback). */
function harness(grant: { relay?: string; streamA?: { endpoint: Endpoint; pin: string; ticket: string } } = {}) {
  const [ka, kb] = [generateKeyPair().publicKey, generateKeyPair().publicKey].sort();
  const names = new Map([
    [ka, 'a'],
    [kb, 'b'],
  ]);
  const clock = new FakeClock();
  const sent: { to: string; cmd: PathCommand }[] = [];
  const nat = new NatKnowledge({ name: (k) => names.get(k) ?? '?', configuredListenPort: () => 51820, now: () => clock.now() });
  const allocatedWith: string[][] = [];
  const alive = new Set<string>();
  let n = 0;
  const paths = new PairPaths({
    node: (k) => (names.has(k) ? { name: names.get(k)!, proxied: false } : undefined),
    pairable: () => true,
    send: (k, cmd) => {
      sent.push({ to: names.get(k)!, cmd });
      if (cmd.step === 'prepare') queueMicrotask(() => paths.onEvent(k, { type: 'path-event', event: 'ready', publicKey: cmd.publicKey, seq: cmd.seq, opened: true }));
    },
    nat,
    allocateRelay: async (a, b) => {
      allocatedWith.push([a, b].map((k) => String(tcpRelay.relayIp(nat.view(k)))));
      const relayId = (++n).toString(16).padStart(16, '0');
      alive.add(relayId);
      return { relayId, forA: Endpoint.parse('203.0.113.2:52000'), forB: Endpoint.parse('203.0.113.2:52001'), ...grant };
    },
    relayAlive: (g) => alive.has(g.relayId),
    releaseRelay: (g) => alive.delete(g.relayId),
    log: pino({ level: 'silent' }),
    clock,
  });
  const key = (x: 'a' | 'b') => (x === 'a' ? ka : kb);
  const at = (x: 'a' | 'b', endpoint: string) => {
    nat.reported(key(x), [Prefixed.parse('192.168.0.2/24')], 51820, false);
    nat.sighted(key(x), Endpoint.parse(endpoint));
  };
  const flush = () => new Promise((r) => setImmediate(r));
  const last = (x: 'a' | 'b') => [...sent].reverse().find((s) => s.to === x)!.cmd;
  /** Both agents seen at these endpoints and connected, and what the hub sent in reply. */
  const bothUp = async (a: string, b: string) => {
    at('a', a);
    at('b', b);
    paths.connected(key('a'), []);
    paths.connected(key('b'), []);
    await flush();
  };
  return { paths, sent, nat, key, at, flush, last, allocatedWith, clock, bothUp };
}

test('a side on the stream: no direct attempt, the relay at once, its side allocated on loopback and told to ride the stream', async () => {
  const h = harness();
  await h.bothUp('127.0.0.1:40001', '203.0.113.20:51820');
  assert.ok(!h.sent.some((s) => s.cmd.step === 'prepare'), 'nothing is punched toward a node whose UDP is blocked');
  assert.deepEqual(h.allocatedWith, [['127.0.0.1', '203.0.113.20']]);
  const a = h.last('a');
  const b = h.last('b');
  assert.ok(a.step === 'use' && a.path.via === 'relay' && a.path.kind === 'tcp-relay');
  assert.ok(b.step === 'use' && b.path.via === 'relay' && b.path.kind === undefined, 'the side on UDP sends to the relay as usual');
  // What the hub sends passes the agent's strict schema.
  assert.ok(pathCommandSchema.safeParse(JSON.parse(JSON.stringify(a))).success);
  const st = h.paths.status()[0];
  assert.equal(st.mode, 'relay');
  assert.match(st.reason ?? '', /a reaches the hub only over TCP\/TLS/);
  h.paths.close();
});

test('both sides on the stream: both ride it', async () => {
  const h = harness();
  await h.bothUp('127.0.0.1:40001', '127.0.0.1:40002');
  assert.deepEqual(h.allocatedWith, [['127.0.0.1', '127.0.0.1']]);
  for (const x of ['a', 'b'] as const) {
    const c = h.last(x);
    assert.ok(c.step === 'use' && c.path.via === 'relay' && c.path.kind === 'tcp-relay');
  }
  h.paths.close();
});

test('the stream side back on UDP (it left the hotel): its pair tries direct at once, and the relay fallback it gets names no stream', async () => {
  const h = harness();
  await h.bothUp('127.0.0.1:40001', '203.0.113.20:51820');
  h.at('a', '198.51.100.7:51820');
  h.paths.changed(h.key('a'), "a's endpoint changed");
  await h.flush();
  const p = h.last('a');
  assert.ok(p.step === 'punch' || p.step === 'prepare', `an attempt, not ${p.step}`);
  const prep = [...h.sent].reverse().find((s) => s.to === 'a' && s.cmd.step === 'prepare')!.cmd;
  assert.ok(prep.step === 'prepare' && prep.candidate.endpoint.toString() === '203.0.113.20:51820');
  h.paths.close();
});

test('NAT knowledge: a loopback sighting is the stream, not a NAT observation, and leaving it is a new network', () => {
  const names = new Map<string, string>();
  const nat = new NatKnowledge({ name: (k) => names.get(k) ?? '?', configuredListenPort: () => 51820 });
  const k = generateKeyPair().publicKey;
  nat.reported(k, [], 51820, false);
  assert.deepEqual(nat.sighted(k, Endpoint.parse('203.0.113.9:51820')), { addressChanged: false });
  assert.equal(nat.status(k)?.mapping, 'independent');
  // Onto the stream: the relay must move the node's side to loopback (addressChanged).
  assert.deepEqual(nat.sighted(k, Endpoint.parse('127.0.0.1:40001')), { addressChanged: true });
  const v = nat.view(k);
  assert.equal(v.seen, null);
  assert.equal(v.stream?.toString(), '127.0.0.1:40001');
  assert.equal(nat.status(k)?.mapping, 'unknown', 'the old network\'s NAT is not this one\'s');
  assert.equal(nat.wanProbeable(k), false, 'the hub does not probe a router it cannot see');
  // Another port on the stream (a reconnect) is not a new address.
  assert.deepEqual(nat.sighted(k, Endpoint.parse('127.0.0.1:40002')), { addressChanged: false });
  assert.deepEqual(nat.sighted(k, Endpoint.parse('203.0.113.9:51820')), { addressChanged: true });
  assert.equal(nat.view(k).stream, null);
  assert.equal(nat.view(k).seen?.toString(), '203.0.113.9:51820');
});

test("a side on the stream of a relay on its own machine: only that side's command carries the relay's stream side and its ticket, both name the relay", async () => {
  const grant = { endpoint: Endpoint.parse('203.0.113.5:443'), pin: 'sha256/' + Buffer.alloc(32, 3).toString('base64'), ticket: Buffer.alloc(32, 9).toString('base64url') };
  const h = harness({ relay: 'rly1', streamA: grant });
  await h.bothUp('127.0.0.1:40001', '203.0.113.20:51820');
  const a = h.last('a');
  const b = h.last('b');
  assert.ok(a.step === 'use' && a.path.via === 'relay' && a.path.kind === 'tcp-relay');
  assert.deepEqual(a.path.stream, grant);
  assert.equal(a.path.relay, 'rly1');
  assert.ok(b.step === 'use' && b.path.via === 'relay' && b.path.stream === undefined && b.path.relay === 'rly1', 'the UDP side gets no ticket');
  const wire = JSON.parse(JSON.stringify(a));
  assert.ok(pathCommandSchema.safeParse(wire).success, JSON.stringify(pathCommandSchema.safeParse(wire).error?.issues));
  assert.ok(!JSON.stringify(b).includes(grant.ticket));
  assert.equal(h.paths.status()[0]?.relay, 'rly1');
  h.paths.close();
});
