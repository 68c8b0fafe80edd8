import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { Prefixed } from '../../../src/core/net/cidr.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import type { PathCommand, PeerReport } from '../../../src/core/protocol.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { NatKnowledge } from '../../../src/hub/nat-knowledge.js';
import { PairPaths } from '../../../src/hub/pairs/coordinator.js';
import { FakeClock } from '../fake-clock.js';

/**
 * The hub's pair decisions on a fake clock, with fake agents, a fake relay and the real NAT
 * knowledge. The agents say `ready` to every attempt right away unless `autoReady` is false.
 */
function harness({ autoReady = true, interfaces = ['192.168.0.2/24'], opened = false } = {}) {
  const [k1, k2] = [generateKeyPair().publicKey, generateKeyPair().publicKey].sort();
  const names = new Map([
    [k1, 'a'],
    [k2, 'b'],
  ]);
  const clock = new FakeClock();
  const sent: { to: string; cmd: PathCommand; at: number }[] = [];
  const nat = new NatKnowledge({ name: (k) => names.get(k) ?? '?', configuredListenPort: () => 51820, now: () => clock.now() });
  const proxied = new Set<string>();
  const alive = new Set<string>();
  let groupsShared = true;
  let allocations = 0;
  /** Nodes whose WAN probe (hub/wan-probe.ts) is under way. */
  const probing = new Set<string>();
  const paths = new PairPaths({
    node: (k) => (names.has(k) ? { name: names.get(k)!, proxied: proxied.has(k) } : undefined),
    pairable: () => groupsShared,
    send: (k, cmd) => {
      sent.push({ to: names.get(k)!, cmd, at: clock.now() });
      // Later, as an agent would: the hub is still sending the attempt to the other side.
      if (autoReady && cmd.step === 'prepare') queueMicrotask(() => paths.onEvent(k, { type: 'path-event', event: 'ready', publicKey: cmd.publicKey, seq: cmd.seq, opened: opened || cmd.initiates === false }));
    },
    nat,
    allocateRelay: async () => {
      const relayId = `${++allocations}`;
      alive.add(relayId);
      return { relayId, forA: Endpoint.parse('203.0.113.2:52000'), forB: Endpoint.parse('203.0.113.2:52001') };
    },
    relayAlive: (g) => alive.has(g.relayId),
    releaseRelay: (g) => alive.delete(g.relayId),
    log: pino({ level: 'silent' }),
    clock,
    natPending: (k) => probing.has(k),
  });
  const key = (n: 'a' | 'b') => (n === 'a' ? k1 : k2);
  const at = (n: 'a' | 'b', endpoint: string, ifs = interfaces) => {
    nat.reported(key(n), ifs.map((i) => Prefixed.parse(i)), 51820, false);
    nat.sighted(key(n), Endpoint.parse(endpoint));
  };
  const flush = () => new Promise((r) => setImmediate(r));
  const last = (n: 'a' | 'b') => [...sent].reverse().find((s) => s.to === n)!.cmd;
  /** What a command does, in one word: prepare, punch, or the path it commits to. */
  const what = (c: PathCommand) => (c.step === 'use' ? c.path.via : c.step);
  const endpointOf = (c: PathCommand) => (c.step === 'prepare' ? c.candidate.endpoint.toString() : c.step === 'use' && c.path.via !== 'hub' ? c.path.endpoint.toString() : null);
  return {
    paths,
    sent,
    probing,
    key,
    at,
    alive,
    proxied,
    nat,
    clock,
    what,
    endpointOf,
    set groupsShared(v: boolean) {
      groupsShared = v;
    },
    get allocations() {
      return allocations;
    },
    async connect(reports: Record<'a' | 'b', PeerReport[]> = { a: [], b: [] }) {
      paths.connected(k1, reports.a);
      paths.connected(k2, reports.b);
      await flush();
    },
    async tick(ms: number) {
      await clock.advance(ms);
    },
    /** Both agents (or those named) report what WireGuard saw for the latest command each got. */
    async answer(event: 'ready' | 'heard' | 'unheard' | 'relay-ok' | 'lost', who: ('a' | 'b')[] = ['a', 'b']) {
      for (const n of who) {
        const cmd = last(n);
        const base = { type: 'path-event' as const, publicKey: key(n === 'a' ? 'b' : 'a'), seq: cmd.seq };
        // Heard where the candidate said: the last prepare this agent got.
        const prepared = [...sent].reverse().find((s) => s.to === n && s.cmd.step === 'prepare')?.cmd;
        if (event === 'heard') paths.onEvent(key(n), { ...base, event, endpoint: Endpoint.parse((prepared && endpointOf(prepared)) ?? '203.0.113.99:1'), afterMs: 5 });
        else paths.onEvent(key(n), { ...base, event });
      }
      await flush();
    },
    last,
    lastWhat: (n: 'a' | 'b') => what(last(n)),
    status: () => paths.status()[0],
  };
}

/** A harness whose two agents are seen at these endpoints and have both connected. */
async function connected(a: string, b: string, opts?: Parameters<typeof harness>[0]) {
  const h = harness(opts);
  h.at('a', a);
  h.at('b', b);
  await h.connect();
  return h;
}

test('two home NATs: one coordinated attempt, both sides at once, committed only when both heard each other', async () => {
  const h = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  const [ca, cb] = [h.last('a'), h.last('b')];
  assert.equal(ca.step, 'punch');
  assert.equal(ca.seq, cb.seq, 'one attempt, the same for both');
  const prepared = h.sent.filter((s) => s.cmd.step === 'prepare');
  assert.deepEqual(prepared.map((s) => [s.to, h.endpointOf(s.cmd)]), [['a', '203.0.113.20:51820'], ['b', '203.0.113.10:51820']]);
  assert.ok(prepared.every((s) => s.cmd.step === 'prepare' && s.cmd.windowMs === 2000 && s.cmd.candidate.kind === 'public4' && s.cmd.fallback === null));
  await h.answer('heard', ['a']);
  assert.equal(h.lastWhat('a'), 'punch', 'one side hearing the other is not enough');
  await h.answer('heard', ['b']);
  assert.equal(h.lastWhat('a'), 'direct');
  const st = h.status();
  assert.equal(st.mode, 'direct');
  assert.equal(st.candidate, 'public4');
  assert.equal(st.family, 4);
  assert.equal(h.allocations, 0, 'no relay was needed');
  h.paths.close();
});

test('nobody punches until both agents are ready: the punch goes to both at once; an agent that never gets ready fails the candidate', async () => {
  const h = await connected('203.0.113.10:51820', '203.0.113.20:51820', { autoReady: false });
  assert.deepEqual(h.sent.map((s) => [s.to, h.what(s.cmd)]), [['a', 'prepare'], ['b', 'prepare']]);
  const seq = h.last('a').seq;
  await h.answer('ready', ['a']);
  await h.tick(1000);
  assert.equal(h.sent.length, 2, 'a is ready, b is not: no punch yet');
  await h.answer('ready', ['b']);
  assert.deepEqual(h.sent.slice(2).map((s) => [s.to, h.what(s.cmd), s.cmd.seq]), [
    ['a', 'punch', seq],
    ['b', 'punch', seq],
  ]);
  await h.answer('ready', ['a']);
  assert.equal(h.sent.length, 4, 'a repeated ready punches nothing twice');
  h.paths.close();

  const g = await connected('203.0.113.10:51820', '203.0.113.20:51820', { autoReady: false });
  g.paths.onEvent(g.key('b'), { type: 'path-event', event: 'ready', publicKey: g.key('a'), seq: g.last('b').seq });
  await g.tick(2350);
  assert.equal(g.status().mode, 'waiting', 'a may still be busy getting ready');
  await g.tick(100); // a window + grace
  assert.equal(g.status().mode, 'relay');
  assert.match(g.status().reason ?? '', /a did not get ready/);
  assert.ok(!g.sent.some((s) => s.cmd.step === 'punch'), 'nobody punched');
  g.paths.close();
});

test("a late side still counts: one side's window ended, the other heard it after; only both failing moves on at once", async () => {
  const h = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  // a's window ended without a word from b: b's agent was busy and punched late.
  await h.answer('unheard', ['a']);
  assert.equal(h.lastWhat('a'), 'punch', 'one side failing is not the verdict');
  await h.tick(1000);
  await h.answer('heard', ['b']);
  await h.answer('heard', ['a']); // a heard b's late punch after all
  assert.equal(h.status().mode, 'direct');
  h.paths.close();

  // Both windows ended with nothing: the verdict is immediate.
  const g = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  await g.answer('unheard');
  assert.equal(g.status().mode, 'relay');
  g.paths.close();

  // One side heard, the other never does: the candidate fails a grace after both reported.
  const k = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  await k.answer('heard', ['a']);
  await k.answer('unheard', ['b']);
  await k.tick(350);
  assert.equal(k.status().mode, 'waiting', "b may still hear a's answering punches");
  await k.tick(100);
  assert.equal(k.status().mode, 'relay');
  assert.match(k.status().reason ?? '', /b heard nothing from a on the direct IPv4 path/);
  k.paths.close();
});

test('two symmetric NATs: relay at once, no attempt wasted', async () => {
  const h = await connected('203.0.113.10:40001', '203.0.113.20:40002');
  assert.deepEqual(h.sent.map((s) => h.what(s.cmd)), ['relay', 'relay']);
  assert.equal(h.endpointOf(h.last('a')), '203.0.113.2:52000');
  assert.equal(h.endpointOf(h.last('b')), '203.0.113.2:52001');
  assert.match(h.status().reason ?? '', /both NATs map per destination/);
  assert.equal(h.status().confirmed, false, 'relayed only counts once traffic came through');
  await h.answer('relay-ok');
  assert.equal(h.status().confirmed, true);
  assert.equal(h.status().via, '203.0.113.2');
  assert.ok((h.status().nextRetryInMs ?? 0) >= 299_000, 'and only a slow safety-net retry');
  h.paths.close();
});

test('two symmetric IPv4 NATs with IPv6 on both sides go direct over IPv6 first, without the relay', async () => {
  const h = harness();
  h.at('a', '203.0.113.10:40001', ['192.168.0.2/24', '2001:db8:a::2/64']);
  h.at('b', '203.0.113.20:40002', ['192.168.1.2/24', '2001:db8:b::2/64']);
  await h.connect();
  const prep = h.sent.filter((s) => s.cmd.step === 'prepare');
  assert.deepEqual(prep.map((s) => (s.cmd.step === 'prepare' ? `${s.to} ${s.cmd.candidate.kind} ${s.cmd.candidate.endpoint.toString()}` : '')), ['a public6 [2001:db8:b::2]:51820', 'b public6 [2001:db8:a::2]:51820']);
  assert.equal(prep.length, 2, 'IPv4 is not tried at all: both NATs map per destination');
  await h.answer('heard');
  assert.equal(h.status().mode, 'direct');
  assert.equal(h.status().candidate, 'public6');
  assert.equal(h.status().family, 6);
  assert.equal(h.allocations, 0);
  h.paths.close();
});

test('an IPv6-only node and an IPv4-only one share no family: the relay (which bridges them) at once, and only slow retries', async () => {
  const h = harness();
  h.at('a', '[2001:db8:a::2]:51820', ['2001:db8:a::2/64']);
  h.at('b', '203.0.113.20:51820', ['192.168.1.2/24']);
  await h.connect();
  assert.deepEqual(h.sent.map((s) => h.what(s.cmd)), ['relay', 'relay']);
  assert.match(h.status().reason ?? '', /a and b have no address family in common \(a: IPv6; b: IPv4\)/);
  assert.ok((h.status().nextRetryInMs ?? 0) >= 299_000, `nothing to try until a network changes: ${h.status().nextRetryInMs}`);
  h.paths.close();

  const g = harness();
  g.at('a', '[2001:db8:a::2]:51820', ['2001:db8:a::2/64']);
  await g.connect();
  assert.equal(g.sent.length, 0, 'b not seen yet: wait for it, do not relay');
  g.paths.close();
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
    while (h.sent.length === before || h.sent[h.sent.length - 1].cmd.step !== 'punch') await h.tick(50);
    const prep = [...h.sent].reverse().find((s) => s.to === 'a' && s.cmd.step === 'prepare')!.cmd;
    starts.push(h.sent[h.sent.length - 1].at);
    assert.ok(prep.step === 'prepare' && prep.fallback?.endpoint.toString() === '203.0.113.2:52000', 'a retry from the relay falls back to it');
    assert.equal(prep.step === 'prepare' && prep.holdMs, 50, 'and only borrows the path for the punch');
    await h.answer('unheard');
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
  assert.equal(h.what(h.sent[before].cmd), 'prepare');
  assert.equal(h.endpointOf(h.sent[before].cmd), '203.0.113.21:51820');
  await h.answer('heard');
  assert.equal(h.status().mode, 'direct');
  assert.deepEqual(h.status().history.map((x) => x.mode), ['relay', 'direct']);
  h.paths.close();
});

test('symmetric against a home NAT: one failed attempt teaches that the home NAT filters, then the hub stops wasting attempts', async () => {
  const h = await connected('203.0.113.10:40001', '203.0.113.20:51820');
  assert.equal(h.lastWhat('a'), 'punch', 'the home NAT might be a full cone: try once');
  await h.answer('unheard');
  assert.equal(h.lastWhat('a'), 'relay');
  assert.match(h.status().reason ?? '', /direct failed/);
  assert.equal(h.nat.view(h.key('b')).nat.filtering, 'dependent', 'the NAT knowledge learned it');
  assert.ok((h.status().nextRetryInMs ?? 0) > 290_000, `now hopeless: slow retries only (${h.status().nextRetryInMs})`);
  h.paths.close();
});

test('a direct path lost twice soon after it came back backs off for minutes instead of flapping', async () => {
  const h = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  for (let round = 0; round < 2; round++) {
    await h.answer('heard');
    assert.equal(h.status().mode, 'direct');
    await h.tick(5000);
    await h.answer('lost', ['a']);
    assert.equal(h.status().mode, 'relay');
    await h.answer('relay-ok');
    if (round === 0) {
      while (h.lastWhat('a') !== 'punch') await h.tick(50);
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
  const report = (peer: string, endpoint: string): PeerReport => ({ publicKey: peer, path: 'direct', kind: 'public4', endpoint: Endpoint.parse(endpoint), handshakeAgeMs: 30_000, rxBytes: 1, txBytes: 1, directAfterMs: 5, reason: null });
  await h.connect({ a: [report(h.key('b'), '203.0.113.20:51820')], b: [report(h.key('a'), '203.0.113.10:51820')] });
  assert.deepEqual(h.sent.map((s) => h.what(s.cmd)), ['direct', 'direct']);
  assert.match(h.status().history[0].reason ?? '', /adopted/);
  // An event about an attempt that no longer runs changes nothing.
  h.paths.onEvent(h.key('a'), { type: 'path-event', event: 'unheard', publicKey: h.key('b'), seq: 0 });
  assert.equal(h.status().mode, 'direct');
  h.paths.close();

  const g = harness();
  g.at('a', '203.0.113.10:51820');
  g.at('b', '203.0.113.20:51820');
  const stale = (peer: string, endpoint: string): PeerReport => ({ ...report(peer, endpoint), handshakeAgeMs: 200_000 });
  await g.connect({ a: [stale(g.key('b'), '203.0.113.20:51820')], b: [stale(g.key('a'), '203.0.113.10:51820')] });
  assert.equal(g.lastWhat('a'), 'punch', 'a handshake older than a session lasts is no evidence: attempt');
  g.paths.close();
});

test('a node that chooses proxied mode takes its pairs through the hub', async () => {
  const h = harness();
  h.at('a', '203.0.113.10:51820');
  h.at('b', '203.0.113.20:51820');
  h.proxied.add(h.key('b'));
  await h.connect();
  assert.deepEqual(h.sent.map((s) => h.what(s.cmd)), ['hub', 'hub']);
  h.proxied.delete(h.key('b'));
  h.paths.reevaluate(h.key('b'), 'b left proxied mode');
  assert.equal(h.lastWhat('a'), 'prepare');
  h.paths.close();
});

test('a pair exists only while both agents share a group, from the moment both connected; its relay goes with it', async () => {
  const h = await connected('203.0.113.10:40001', '203.0.113.20:40002');
  assert.equal(h.paths.size, 1);
  assert.equal(h.alive.size, 1, 'relayed');
  h.groupsShared = false;
  h.paths.refresh(h.key('a'));
  assert.equal(h.paths.size, 0);
  assert.equal(h.alive.size, 0, 'the allocation was released');
  h.groupsShared = true;
  h.paths.refresh(h.key('a'));
  assert.equal(h.paths.size, 1, 'a shared group again: the pair is back and decided at once');
  await h.tick(10);
  assert.equal(h.lastWhat('a'), 'relay');
  h.paths.disconnected(h.key('b'));
  h.paths.refresh(h.key('a'));
  assert.equal(h.paths.size, 1, 'an agent that disconnects keeps its pairs (and their path) for when it is back');
  h.paths.close();
});

test('no relay available: the pair asks again with its usual backoff (1, 2, 4, then every 8 s), not after 5 minutes', async () => {
  const h = harness();
  const deps = (h.paths as unknown as { deps: { allocateRelay: (a: string, b: string) => Promise<unknown> } }).deps;
  const real = deps.allocateRelay;
  const asked: number[] = [];
  let relays = 0;
  deps.allocateRelay = async (a, b) => {
    asked.push(h.clock.now());
    return relays > 0 ? real(a, b) : undefined;
  };
  h.at('a', '203.0.113.10:40001');
  h.at('b', '203.0.113.20:40002');
  await h.connect();
  assert.equal(h.status().mode, 'no-path');
  assert.match(h.status().reason ?? '', /no relay available/);
  await h.tick(1000 + 2000 + 4000 + 8000 + 8000);
  const gaps = asked.slice(1).map((t, i) => t - asked[i]);
  assert.deepEqual(gaps, [1000, 2000, 4000, 8000, 8000], 'issue 10, finding 9: retried within the normal backoff');
  relays = 1; // a relay registers
  await h.tick(8000);
  assert.equal(h.status().mode, 'relay');
  assert.equal(h.lastWhat('a'), 'relay');
  h.paths.close();
});

test('a relay allocation that answers after the pair went direct is given back, not used', async () => {
  let release: (() => void) | undefined;
  const h = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  await h.answer('heard');
  assert.equal(h.status().mode, 'direct');
  // The direct path is lost; the relay is slow to answer, and meanwhile b's network changes and the pair goes direct again.
  const slow = new Promise<void>((r) => (release = r));
  const original = (h.paths as unknown as { deps: { allocateRelay: (a: string, b: string) => Promise<unknown> } }).deps;
  const allocate = original.allocateRelay;
  original.allocateRelay = async (a, b) => {
    await slow;
    return allocate(a, b);
  };
  await h.answer('lost', ['a']);
  h.at('b', '203.0.113.21:51820');
  h.paths.changed(h.key('b'), 'b moved');
  await h.answer('heard');
  assert.equal(h.status().mode, 'direct');
  release!();
  await h.tick(10);
  assert.equal(h.status().mode, 'direct', 'the late allocation does not pull the pair onto the relay');
  assert.equal(h.alive.size, 0, 'and it was released');
  h.paths.close();
});

test('exactly one side initiates each attempt: the one whose NAT maps per destination, else they take turns from one failure to the next', async () => {
  const initiators = (h: ReturnType<typeof harness>, from = 0) =>
    h.sent.slice(from).filter((s) => s.cmd.step === 'prepare').map((s) => `${s.to}:${s.cmd.step === 'prepare' && s.cmd.initiates}`);
  const home = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  assert.deepEqual(initiators(home), ['a:true', 'b:false']);
  await home.answer('unheard');
  const before = home.sent.length;
  while (!home.sent.slice(before).some((s) => s.cmd.step === 'prepare')) await home.tick(50);
  assert.deepEqual(initiators(home, before), ['a:false', 'b:true'], 'the retry swaps the roles');
  home.paths.close();

  // b's NAT changed its port (40002 for 51820): only b's own initiation can show a where it is.
  const sym = await connected('203.0.113.10:51820', '203.0.113.20:40002');
  assert.deepEqual(initiators(sym), ['a:false', 'b:true']);
  sym.paths.close();
});

test('a router known to take unsolicited WAN input opens first: its node answers, the other initiates, even on the first attempt', async () => {
  const initiators = (h: ReturnType<typeof harness>) => h.sent.filter((s) => s.cmd.step === 'prepare').map((s) => `${s.to}:${s.cmd.step === 'prepare' && s.cmd.initiates}`);
  // Without the fact, a initiates first (the turns start with a); a's router leaks, so b must.
  const h = harness();
  h.at('a', '203.0.113.10:51820');
  h.at('b', '203.0.113.20:51820');
  h.nat.wanProbed(h.key('a'), 31000, 30000);
  assert.equal(h.nat.view(h.key('a')).nat.leaky, 'yes');
  await h.connect();
  assert.deepEqual(initiators(h), ['a:false', 'b:true']);
  const opens = (from = 0) => h.sent.slice(from).filter((s) => s.cmd.step === 'prepare').map((s) => `${s.to}:${s.cmd.step === 'prepare' && s.cmd.openFirst === true}`);
  assert.deepEqual(opens(), ['a:true', 'b:false'], 'and the leaky side opens first in every attempt, roles or not');

  // A failed attempt: the retry waits until the router's conntrack entry of the peer's punch is gone.
  await h.answer('unheard');
  const before = h.sent.length;
  await h.tick(30_000);
  assert.equal(h.sent.slice(before).filter((s) => s.cmd.step === 'prepare').length, 0, 'no retry within 30 s: it would refresh the entry that holds the port');
  await h.tick(6000);
  assert.deepEqual(opens(before), ['a:true', 'b:false'], 'then one, the leaky side opening first again');
  h.paths.close();

  // A per-destination mapping still decides first: only its own initiation shows where it is.
  const sym = harness();
  sym.at('a', '203.0.113.10:51820');
  sym.at('b', '203.0.113.20:40002');
  sym.nat.wanProbed(sym.key('a'), 31000, 30000);
  await sym.connect();
  assert.deepEqual(initiators(sym), ['a:false', 'b:true']);
  sym.paths.close();
});

test("a pair's first attempt waits for what the hub is still learning about either NAT, then starts; later attempts never wait", async () => {
  const h = harness();
  h.at('a', '203.0.113.10:51820');
  h.at('b', '203.0.113.20:51820');
  h.probing.add(h.key('b'));
  await h.connect();
  assert.equal(h.sent.length, 0, 'no attempt while b is being probed');
  assert.equal(h.status().mode, 'waiting');
  h.probing.delete(h.key('b'));
  h.paths.natSettled(h.key('b'));
  await h.answer('heard');
  assert.equal(h.status().mode, 'direct', 'the attempt ran once the probe was done');
  h.probing.add(h.key('a'));
  h.paths.changed(h.key('a'), 'endpoint changed');
  await h.tick(10);
  assert.equal(h.lastWhat('a'), 'punch', 'a pair that had a path tries again at once, whatever is being learned');
  h.paths.close();
});

test('a peer that saw a node at another port teaches "leaky" when its packet may have come first, and "maps per destination" when the node opened first', async () => {
  // a initiated without opening its NAT first; b, the responder, opened first, so its packet may
  // have reached a's router before a's own left: a changed port there is a leak.
  const h = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  h.paths.onEvent(h.key('a'), { type: 'path-event', event: 'heard', publicKey: h.key('b'), seq: h.last('a').seq, endpoint: Endpoint.parse('203.0.113.20:51820'), afterMs: 5 });
  h.paths.onEvent(h.key('b'), { type: 'path-event', event: 'heard', publicKey: h.key('a'), seq: h.last('b').seq, endpoint: Endpoint.parse('203.0.113.10:2027'), afterMs: 5 });
  await new Promise((r) => setImmediate(r));
  assert.equal(h.status().mode, 'direct');
  const a = h.nat.view(h.key('a')).nat;
  assert.equal(a.leaky, 'yes');
  assert.equal(a.mapping, 'independent', 'a kept its port toward the hub: not symmetric');
  assert.match(a.leakyWhy, /peer b saw it at port 2027, the hub at 51820/);
  h.paths.close();

  const o = await connected('203.0.113.10:51820', '203.0.113.20:51820', { opened: true });
  o.paths.onEvent(o.key('a'), { type: 'path-event', event: 'heard', publicKey: o.key('b'), seq: o.last('a').seq, endpoint: Endpoint.parse('203.0.113.20:51820'), afterMs: 5 });
  o.paths.onEvent(o.key('b'), { type: 'path-event', event: 'heard', publicKey: o.key('a'), seq: o.last('b').seq, endpoint: Endpoint.parse('203.0.113.10:2027'), afterMs: 5 });
  await new Promise((r) => setImmediate(r));
  assert.equal(o.nat.view(o.key('a')).nat.mapping, 'dependent', 'a opened first and still got another port: it maps per destination');
  assert.equal(o.nat.view(o.key('a')).nat.leaky, 'unknown');
  o.paths.close();
});

test("a router that maps but does not forward: after two failed attempts through it the mapping is left out, not retried every 8 s; it comes back after 10 min, or at once as another mapping", async () => {
  const h = harness();
  // Two symmetric NATs; a's router maps a port, which makes the pair possible.
  h.at('a', '203.0.113.10:40001');
  h.at('b', '203.0.113.20:40002');
  const map = (external: string) => h.nat.reported(h.key('a'), [Prefixed.parse('192.168.0.2/24')], 51820, false, { protocol: 'pcp', external: Endpoint.parse(external), expiresInMs: 7200_000 });
  map('203.0.113.10:51820');
  await h.connect();
  const kinds = (from: number) => h.sent.slice(from).filter((s) => s.to === 'a' && s.cmd.step === 'prepare').map((s) => (s.cmd.step === 'prepare' ? s.cmd.candidate.kind : null));
  assert.deepEqual(kinds(0), ['mapped']);
  // Nothing comes through the mapping: a failure of the attempt alone could be the agents' own (a stall), so one more.
  await h.answer('unheard');
  assert.equal(h.status().mode, 'relay');
  await h.answer('relay-ok');
  const second = h.sent.length;
  while (kinds(second).length === 0) await h.tick(50);
  assert.deepEqual(kinds(second), ['mapped'], 'the first retry tries the mapping again');
  await h.answer('unheard'); // mapped
  await h.answer('unheard'); // the forced retry's public4 as well
  assert.match(h.nat.status(h.key('a'))?.portMapping?.problem ?? '', /did not forward in 2 attempts in a row; tried again in 10 min/);
  assert.equal(h.nat.view(h.key('a')).mapped, null, "left out of a's view: of every pair's candidates and of client configs");

  // For the next 10 min the pair is hopeless as far as the hub knows: slow retries, none through the mapping.
  const third = h.sent.length;
  const distrustedAt = h.clock.now();
  assert.ok((h.status().nextRetryInMs ?? 0) >= 200_000, `a slow retry, not every 8 s (next in ${h.status().nextRetryInMs} ms)`);
  for (let i = 0; i < 3600 && !kinds(third).includes('mapped'); i++) await h.tick(1000);
  const back = h.clock.now() - distrustedAt;
  assert.ok(back >= 10 * 60_000 && back <= 15 * 60_000 + 5000, `tried again at the first slow retry after 10 min (after ${back} ms: ${kinds(third).join(', ')})`);
  assert.ok(kinds(third).filter((k) => k === 'public4').length <= 2, `meanwhile only the slow safety-net retries: ${kinds(third).join(', ')}`);

  // Another mapping (the router gave another port) is trusted afresh, and pairs try it at once.
  await h.answer('unheard');
  await h.answer('unheard');
  assert.equal(h.nat.view(h.key('a')).mapped, null, 'failed again: left out again');
  assert.deepEqual(map('203.0.113.10:51999'), { mappingChanged: true });
  const fourth = h.sent.length;
  h.paths.mappingChanged(h.key('a'), 'a maps another port');
  assert.deepEqual(kinds(fourth), ['mapped']);
  await h.answer('heard');
  assert.equal(h.status().mode, 'direct');
  assert.equal(h.status().candidate, 'mapped');
  h.paths.close();
});

test('a relay path that went silent gets a new allocation with a new id, which the agents must latch afresh', async () => {
  const h = await connected('203.0.113.10:51820', '203.0.113.20:51820');
  await h.answer('unheard');
  await h.tick(10);
  const allocation = (n: 'a' | 'b') => {
    const c = h.last(n);
    return c.step === 'use' && c.path.via === 'relay' ? c.path.relayId : undefined;
  };
  assert.equal(h.status().mode, 'relay');
  const first = allocation('a');
  assert.equal(typeof first, 'string');
  assert.equal(allocation('b'), first, 'one allocation, one id on both sides');
  await h.answer('relay-ok');
  await h.answer('lost', ['a']);
  await h.tick(10);
  assert.equal(h.status().mode, 'relay');
  assert.notEqual(allocation('a'), first, 'the re-allocation is a new allocation, even on the same relay and ports');
  assert.equal(allocation('b'), allocation('a'));
  h.paths.close();
});
