import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';
import pino from 'pino';
import type { PathCommand, PeerReport } from '../../../src/core/protocol.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { emptyFacts, observe, withNetwork, type NatFacts } from '../../../src/hub/nat-facts.js';
import { PairPaths } from '../../../src/hub/pair-paths.js';

/**
 * The hub's pair decisions with a fake clock, fake agents and a fake relay. The agents say
 * `ready` to every attempt right away unless `autoReady` is false.
 */
function harness({ autoReady = true } = {}) {
  const [k1, k2] = [generateKeyPair().publicKey, generateKeyPair().publicKey].sort();
  const names = new Map([
    [k1, 'a'],
    [k2, 'b'],
  ]);
  let now = 1_000_000;
  const sent: { to: string; cmd: PathCommand; at: number }[] = [];
  const facts = new Map<string, NatFacts>();
  const connected = new Set<string>();
  const proxied = new Set<string>();
  const alive = new Set<string>();
  let allocations = 0;
  const paths = new PairPaths({
    node: (k) => (names.has(k) ? { key: k, name: names.get(k)!, proxied: proxied.has(k) } : undefined),
    connected: (k) => connected.has(k),
    send: (k, cmd) => {
      sent.push({ to: names.get(k)!, cmd, at: now });
      // Later, as an agent would: the hub is still sending the attempt to the other side.
      if (autoReady && cmd.mode === 'attempt') queueMicrotask(() => paths.onEvent(k, { type: 'path-event', publicKey: cmd.publicKey, seq: cmd.seq, event: 'ready', endpoint: null, afterMs: 1 }));
    },
    facts: (k) => facts.get(k) ?? emptyFacts(51820),
    setFacts: (k, f) => facts.set(k, f),
    allocateRelay: async () => {
      const relayId = `r${++allocations}`;
      alive.add(relayId);
      return { relayId, forA: '203.0.113.2:52000', forB: '203.0.113.2:52001' };
    },
    relayAlive: (g) => alive.has(g.relayId),
    releaseRelay: (g) => alive.delete(g.relayId),
    log: pino({ level: 'silent' }),
    now: () => now,
  });
  const key = (n: 'a' | 'b') => (n === 'a' ? k1 : k2);
  const at = (n: 'a' | 'b', endpoint: string) => facts.set(key(n), observe(withNetwork(emptyFacts(51820), ['192.168.0.2/24'], 51820, []), endpoint, []));
  const flush = () => new Promise((r) => setImmediate(r));
  return {
    paths,
    sent,
    key,
    at,
    alive,
    proxied,
    get allocations() {
      return allocations;
    },
    async connect(reports: Record<'a' | 'b', PeerReport[]> = { a: [], b: [] }) {
      paths.sync([[k1, k2]]);
      connected.add(k1);
      paths.connected(k1, reports.a);
      connected.add(k2);
      paths.connected(k2, reports.b);
      await flush();
    },
    async tick(ms: number) {
      for (let left = ms; left > 0; left -= 50) {
        now += Math.min(50, left);
        mock.timers.tick(Math.min(50, left));
        await flush();
      }
    },
    /** Both agents report what WireGuard saw for the latest attempt. */
    async answer(event: 'ready' | 'direct-rx' | 'failed' | 'relay-ok' | 'lost', who: ('a' | 'b')[] = ['a', 'b']) {
      for (const n of who) {
        const last = [...sent].reverse().find((s) => s.to === n)!;
        paths.onEvent(key(n), { type: 'path-event', publicKey: key(n === 'a' ? 'b' : 'a'), seq: last.cmd.seq, event, endpoint: event === 'direct-rx' ? last.cmd.endpoint : null, afterMs: 5 });
      }
      await flush();
    },
    last: (n: 'a' | 'b') => [...sent].reverse().find((s) => s.to === n)!.cmd,
    status: () => paths.status()[0],
  };
}

/** A harness whose two agents are seen at these endpoints and have both connected. */
async function connected(a: string, b: string, opts?: { autoReady: boolean }) {
  const h = harness(opts);
  h.at('a', a);
  h.at('b', b);
  await h.connect();
  return h;
}

beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
afterEach(() => mock.timers.reset());

test('two home NATs: one coordinated attempt, both sides at once, committed only when both heard each other', async () => {
  const h = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  const [ca, cb] = [h.last('a'), h.last('b')];
  assert.equal(ca.mode, 'punch');
  assert.equal(ca.seq, cb.seq, 'one attempt, the same for both');
  assert.equal(ca.endpoint, '203.0.113.20:51820');
  assert.equal(cb.endpoint, '203.0.113.10:51820');
  assert.equal(ca.windowMs, 2000);
  await h.answer('direct-rx', ['a']);
  assert.equal(h.last('a').mode, 'punch', 'one side hearing the other is not enough');
  await h.answer('direct-rx', ['b']);
  assert.equal(h.last('a').mode, 'direct');
  assert.equal(h.status().mode, 'direct');
  assert.equal(h.allocations, 0, 'no relay was needed');
  h.paths.close();
});

test('nobody punches until both agents are ready: the punch goes to both at once; an agent that never gets ready fails the candidate', async () => {
  const h = await connected('203.0.113.10:51820', '203.0.113.20:51820', { autoReady: false });
  assert.deepEqual(h.sent.map((s) => [s.to, s.cmd.mode]), [['a', 'attempt'], ['b', 'attempt']]);
  const seq = h.last('a').seq;
  await h.answer('ready', ['a']);
  await h.tick(1000);
  assert.equal(h.sent.length, 2, 'a is ready, b is not: no punch yet');
  await h.answer('ready', ['b']);
  assert.deepEqual(h.sent.slice(2).map((s) => [s.to, s.cmd.mode, s.cmd.seq, s.cmd.endpoint]), [
    ['a', 'punch', seq, '203.0.113.20:51820'],
    ['b', 'punch', seq, '203.0.113.10:51820'],
  ]);
  await h.answer('ready', ['a']);
  assert.equal(h.sent.length, 4, 'a repeated ready punches nothing twice');
  h.paths.close();

  const g = await connected('203.0.113.10:51820', '203.0.113.20:51820', { autoReady: false });
  await g.answer('ready', ['b']);
  await g.tick(2350);
  assert.equal(g.status().mode, 'waiting', 'a may still be busy getting ready');
  await g.tick(100); // a window + grace
  assert.equal(g.status().mode, 'relay');
  assert.match(g.status().reason ?? '', /a did not get ready/);
  assert.ok(!g.sent.some((s) => s.cmd.mode === 'punch'), 'nobody punched');
  g.paths.close();
});

test('a late side still counts: one side\'s window ended, the other heard it after; only both failing moves on at once', async () => {
  const h = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  // a's window ended without a word from b: b's agent was busy and punched late.
  await h.answer('failed', ['a']);
  assert.equal(h.last('a').mode, 'punch', 'one side failing is not the verdict');
  await h.tick(1000);
  await h.answer('direct-rx', ['b']);
  await h.answer('direct-rx', ['a']); // a heard b's late punch after all
  assert.equal(h.status().mode, 'direct');
  h.paths.close();

  // Both windows ended with nothing: the verdict is immediate.
  const g = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  await g.answer('failed');
  assert.equal(g.status().mode, 'relay');
  g.paths.close();

  // One side heard, the other never does: the candidate fails a grace after both reported.
  const k = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  await k.answer('direct-rx', ['a']);
  await k.answer('failed', ['b']);
  await k.tick(350);
  assert.equal(k.status().mode, 'waiting', 'b may still hear a\'s answering punches');
  await k.tick(100);
  assert.equal(k.status().mode, 'relay');
  assert.match(k.status().reason ?? '', /b heard nothing from a/);
  k.paths.close();
});

test('two symmetric NATs: relay at once, no attempt wasted', async () => {
  const h = await connected('203.0.113.10:40001', '203.0.113.20:40002');
  assert.deepEqual(h.sent.map((s) => s.cmd.mode), ['relay', 'relay']);
  assert.equal(h.last('a').relay, '203.0.113.2:52000');
  assert.equal(h.last('b').relay, '203.0.113.2:52001');
  assert.match(h.status().reason ?? '', /both NATs map per destination/);
  assert.equal(h.status().confirmed, false, 'relayed only counts once traffic came through');
  await h.answer('relay-ok');
  assert.equal(h.status().confirmed, true);
  assert.ok((h.status().nextRetryInMs ?? 0) >= 299_000, 'and only a slow safety-net retry');
  h.paths.close();
});

test('a failed attempt goes to the relay and retries with backoff spaced from attempt to attempt, up to 8 s, never giving up', async () => {
  const h = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  await h.tick(4300);
  assert.equal(h.status().mode, 'waiting', 'agents that said nothing may have started late: the hub waits two windows');
  await h.tick(100); // 2 windows + grace, and no agent reported anything
  assert.equal(h.status().mode, 'relay');
  await h.answer('relay-ok');
  const starts: number[] = [];
  for (let i = 0; i < 9; i++) {
    const before = h.sent.length;
    while (h.sent.length === before || h.sent[h.sent.length - 1].cmd.mode !== 'punch') await h.tick(50);
    const cmd = h.last('a');
    starts.push(h.sent[h.sent.length - 1].at);
    assert.equal(cmd.relay, '203.0.113.2:52000', 'a retry from the relay falls back to it');
    assert.equal(cmd.holdMs, 50, 'and only borrows the path for the punch');
    await h.answer('failed');
  }
  const gaps = starts.slice(1).map((t, i) => t - starts[i]);
  assert.deepEqual(gaps.slice(-4), [8000, 8000, 8000, 8000], `retries settle at 8 s: ${gaps.join(', ')}`);
  assert.ok(gaps.every((g, i) => i === 0 || g >= gaps[i - 1]), `never closer together: ${gaps.join(', ')}`);
  assert.equal(h.allocations, 1, 'the relay allocation is kept across retries');
  assert.equal(h.status().history.length, 1, 'failed retries do not move the pair');

  // A network change retries at once.
  const before = h.sent.length;
  h.at('b', '203.0.113.21:51820');
  h.paths.changed(h.key('b'), 'b moved');
  assert.equal(h.sent[before].cmd.mode, 'attempt');
  assert.equal(h.sent[before].cmd.endpoint, '203.0.113.21:51820');
  await h.answer('direct-rx');
  assert.equal(h.status().mode, 'direct');
  assert.deepEqual(h.status().history.map((x) => x.mode), ['relay', 'direct']);
  h.paths.close();
});

test('symmetric against a home NAT: one failed attempt teaches that the home NAT filters, then the hub stops wasting attempts', async () => {
  const h = await connected('203.0.113.10:40001', '203.0.113.20:51820');
  assert.equal(h.last('a').mode, 'punch', 'the home NAT might be a full cone: try once');
  await h.answer('failed');
  assert.equal(h.last('a').mode, 'relay');
  assert.match(h.status().reason ?? '', /direct failed/);
  assert.ok((h.status().nextRetryInMs ?? 0) > 290_000, `now hopeless: slow retries only (${h.status().nextRetryInMs})`);
  h.paths.close();
});

test('a direct path lost twice soon after it came back backs off for minutes instead of flapping', async () => {
  const h = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  for (let round = 0; round < 2; round++) {
    await h.answer('direct-rx');
    assert.equal(h.status().mode, 'direct');
    await h.tick(5000);
    await h.answer('lost', ['a']);
    assert.equal(h.status().mode, 'relay');
    await h.answer('relay-ok');
    if (round === 0) {
      while (h.last('a').mode !== 'punch') await h.tick(50);
    }
  }
  assert.ok((h.status().nextRetryInMs ?? 0) > 290_000, `unstable: ${h.status().nextRetryInMs}`);
  assert.deepEqual(h.status().history.map((x) => x.mode), ['direct', 'relay', 'direct', 'relay']);
  h.paths.close();
});

test('after a hub restart a pair both agents still use directly is adopted without an attempt; stale reports are ignored', async () => {
  const h = harness();
  h.at('a', '203.0.113.10:51820');
  h.at('b', '203.0.113.20:51820');
  const report = (peer: string, endpoint: string): PeerReport => ({ publicKey: peer, path: 'direct', endpoint, handshakeAgeMs: 30_000, rxBytes: 1, txBytes: 1, directAfterMs: 5, reason: null });
  await h.connect({ a: [report(h.key('b'), '203.0.113.20:51820')], b: [report(h.key('a'), '203.0.113.10:51820')] });
  assert.deepEqual(h.sent.map((s) => s.cmd.mode), ['direct', 'direct']);
  assert.match(h.status().history[0].reason ?? '', /adopted/);
  // An event about an attempt that no longer runs changes nothing.
  h.paths.onEvent(h.key('a'), { type: 'path-event', publicKey: h.key('b'), seq: 0, event: 'failed', endpoint: null, afterMs: null });
  assert.equal(h.status().mode, 'direct');
  h.paths.close();
});

test('a node that chooses proxied mode takes its pairs through the hub', async () => {
  const h = harness();
  h.at('a', '203.0.113.10:51820');
  h.at('b', '203.0.113.20:51820');
  h.proxied.add(h.key('b'));
  await h.connect();
  assert.deepEqual(h.sent.map((s) => s.cmd.mode), ['hub', 'hub']);
  h.proxied.delete(h.key('b'));
  h.paths.reevaluate(h.key('b'), 'b left proxied mode');
  assert.equal(h.last('a').mode, 'attempt');
  h.paths.close();
});
