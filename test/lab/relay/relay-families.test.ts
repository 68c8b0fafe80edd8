/**
 * Real wireguard-go through the relay across families, in namespaces this file makes itself (the
 * lab's topologies are IPv4 only for now): one segment (a bridge in its own namespace) holding
 *   relay  198.51.100.1 and 2001:db8:5::1 (relay-host with an address of each family)
 *   a      2001:db8:5::10, IPv6 only (no IPv4 address, no IPv4 route)
 *   b      198.51.100.20, IPv4 only (IPv6 disabled)
 *   c      2001:db8:5::30, IPv6 only
 * a <-> b is bridged (a's side on the relay's IPv6 address, b's on its IPv4 one) and forwards in
 * userspace; a <-> c is an IPv6 pair, which the relay's IPv6 kernel path (ingress, fwd ip6) takes
 * once both sides are confirmed. Everything is torn down at the end, also on failure or a signal.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run } from '../../../src/core/exec.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { setDevice } from '../../../src/core/wireguard/uapi.js';
import { addNamespace, deleteNamespace, sysctl } from '../../../src/lab/netns.js';
import { msUntilPingReply, removeWireGuardSockets, startWireGuard, waitForHandshake, type StartedWireGuard } from '../../../src/lab/wireguard.js';
import { relayTable } from '../../../src/relay/kernel-path.js';
import type { AllocationStats } from '../../../src/relay/relay.js';

const RELAY_HOST = fileURLToPath(new URL('../../../src/lab/relay-host.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const tag = `${process.pid % 100000}`;
const NS = { sw: `wgr6-${tag}-sw`, relay: `wgr6-${tag}-relay`, a: `wgr6-${tag}-a`, b: `wgr6-${tag}-b`, c: `wgr6-${tag}-c` };
const IF = { a: `r6a${tag}`, b: `r6b${tag}`, c: `r6c${tag}` };
const RELAY4 = '198.51.100.1';
const RELAY6 = '2001:db8:5::1';
const A6 = '2001:db8:5::10';
const B4 = '198.51.100.20';
const C6 = '2001:db8:5::30';

let teardown: Promise<void> | undefined;
/** Idempotent: deletes whatever of ours exists (deleting a namespace stops the processes in it). */
function down(): Promise<void> {
  teardown ??= (async () => {
    for (const ns of Object.values(NS)) await deleteNamespace(ns);
    await removeWireGuardSockets(Object.values(IF));
  })();
  return teardown;
}
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) process.on(sig, () => void down().finally(() => process.exit(code)));

async function build(): Promise<void> {
  for (const ns of Object.values(NS)) await addNamespace(ns);
  const batch = (ns: string, lines: string[]) => run('ip', ['-n', ns, '-batch', '-'], { input: lines.join('\n') + '\n' });
  // The segment's switch, like the lab's internet core: a bridge with no firewall.
  await batch(NS.sw, ['link add br0 type bridge', 'link set br0 up']);
  for (const host of ['relay', 'a', 'b', 'c'] as const) {
    await run('ip', ['-n', NS.sw, 'link', 'add', `p-${host}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', NS[host]]);
    await batch(NS.sw, [`link set p-${host} master br0`, `link set p-${host} up`]);
  }
  // No router on this segment: router advertisements must not give anyone an address we did not plan.
  for (const ns of [NS.sw, NS.relay, NS.a, NS.c]) await sysctl(ns, { 'net.ipv6.conf.all.accept_ra': 0, 'net.ipv6.conf.default.accept_ra': 0 });
  // nodad: a tentative address cannot be bound, and there is nobody else to collide with.
  await batch(NS.relay, ['link set eth0 up', `addr add ${RELAY4}/24 dev eth0`, `addr add ${RELAY6}/64 dev eth0 nodad`]);
  await batch(NS.a, ['link set eth0 up', `addr add ${A6}/64 dev eth0 nodad`]);
  await batch(NS.c, ['link set eth0 up', `addr add ${C6}/64 dev eth0 nodad`]);
  await sysctl(NS.b, { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1, 'net.ipv6.conf.eth0.disable_ipv6': 1 });
  await batch(NS.b, ['link set eth0 up', `addr add ${B4}/24 dev eth0`]);
}

interface RelayOutput {
  ready?: { kernels: Record<string, string>; userspace: Record<string, string> };
  stats: AllocationStats[];
  latched: { id: string; publicKey: string; endpoint: string }[];
  stderr: string;
}

function startRelay(a: StartedWireGuard, b: StartedWireGuard, c: StartedWireGuard): { child: ChildProcess; out: RelayOutput } {
  const args = [RELAY_HOST, '--address', RELAY4, '--address', RELAY6, '--ports', '47000-47010', '--allocate', `ab,${a.publicKey},${A6},${b.publicKey},${B4}`, '--allocate', `ac,${a.publicKey},${A6},${c.publicKey},${C6}`];
  const child = spawn('ip', ['netns', 'exec', NS.relay, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: RelayOutput = { stats: [], latched: [], stderr: '' };
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const x = JSON.parse(line) as unknown;
      if (Array.isArray(x)) out.stats = x as AllocationStats[];
      else if ((x as { ready?: boolean }).ready) out.ready = x as RelayOutput['ready'];
      else if ((x as { event?: string }).event === 'latched') out.latched.push(x as RelayOutput['latched'][number]);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (out.stderr += d.toString()));
  return { child, out };
}

async function pings(ns: string, target: string, n: number): Promise<void> {
  const r = await run('ping', ['-n', '-q', '-c', String(n), '-i', '0.02', target], { netns: ns, allowFail: true });
  assert.match(r.stdout, new RegExp(`${n} received`), r.stdout);
}

/** A peer pointed at its relay endpoint, with a fresh keepalive so that WireGuard sends at once. */
async function peer(ifname: string, publicKey: string, endpoint: string, allowed: string): Promise<void> {
  await setDevice(ifname, { peers: [{ publicKey, endpoint: Endpoint.parse(endpoint), allowedIps: [allowed], persistentKeepalive: 0 }, { publicKey, persistentKeepalive: 25 }] });
}

test('real WireGuard through one relay: an IPv6-only node with an IPv4-only one (bridged, userspace), and an IPv6 pair (kernel, fwd ip6)', { timeout: 120_000 }, async (t) => {
  let relay: ChildProcess | undefined;
  try {
    await build();
    const a = await startWireGuard(NS.a, IF.a, { listenPort: 51820, address: '10.77.0.1/24' });
    const b = await startWireGuard(NS.b, IF.b, { listenPort: 51820, address: '10.77.0.2/24' });
    const c = await startWireGuard(NS.c, IF.c, { listenPort: 51820, address: '10.77.0.3/24' });
    const started = startRelay(a, b, c);
    relay = started.child;
    const out = started.out;
    for (let i = 0; i < 100 && !out.ready; i++) await sleep(50);
    assert.ok(out.ready, `the relay did not start: ${out.stderr}`);
    t.diagnostic(`relay kernel paths ${JSON.stringify(out.ready.kernels)}, userspace ${JSON.stringify(out.ready.userspace)}`);
    // Ports go out in order: ab gets 47000 (a) and 47001 (b), ac 47002 (a) and 47003 (c).
    await peer(IF.a, b.publicKey, `[${RELAY6}]:47000`, '10.77.0.2/32');
    await peer(IF.b, a.publicKey, `${RELAY4}:47001`, '10.77.0.1/32');
    await peer(IF.a, c.publicKey, `[${RELAY6}]:47002`, '10.77.0.3/32');
    await peer(IF.c, a.publicKey, `[${RELAY6}]:47003`, '10.77.0.1/32');
    const stats = (id: string) => {
      const s = out.stats.find((x) => x.id === id);
      assert.ok(s, `no counters for ${id} yet`);
      return s;
    };

    await t.test('bridged: a (IPv6 only) and b (IPv4 only) handshake and ping through one allocation, one side on each family', async () => {
      await waitForHandshake(IF.a, b.publicKey, 15_000);
      t.diagnostic(`a -> b first ping reply after ${await msUntilPingReply(NS.a, '10.77.0.2', 5000)} ms`);
      await pings(NS.a, '10.77.0.2', 20);
      await pings(NS.b, '10.77.0.1', 20);
      await sleep(600);
      const s = stats('ab');
      assert.deepEqual([s.a.relayAddress, s.b.relayAddress], [RELAY6, RELAY4]);
      assert.equal(s.a.latched, `[${A6}]:51820`);
      assert.equal(s.b.latched, `${B4}:51820`);
      assert.equal(s.kernel, false, 'a bridged pair stays in userspace');
      assert.ok(s.aToB.packets >= 40 && s.bToA.packets >= 40, JSON.stringify(s));
      assert.ok(out.latched.some((e) => e.id === 'ab' && e.publicKey === a.publicKey && e.endpoint === `[${A6}]:51820`));
    });

    await t.test('IPv6 pair: a and c go through the relay, in the kernel once confirmed', async () => {
      await waitForHandshake(IF.a, c.publicKey, 15_000);
      await msUntilPingReply(NS.a, '10.77.0.3', 5000);
      // The pair moves into the kernel right after both sides are confirmed: count after that.
      await sleep(1500);
      const before = stats('ac');
      await pings(NS.a, '10.77.0.3', 50);
      await sleep(600);
      const s = stats('ac');
      assert.deepEqual([s.a.relayAddress, s.b.relayAddress], [RELAY6, RELAY6]);
      assert.equal(s.a.latched, `[${A6}]:51820`);
      assert.equal(s.b.latched, `[${C6}]:51820`);
      if (out.ready?.kernels.ipv6 === undefined) {
        t.diagnostic(`no IPv6 kernel path here (${out.ready?.userspace.ipv6}): forwarded in userspace`);
        assert.equal(s.kernel, false);
      } else {
        assert.equal(out.ready.kernels.ipv6, 'ingress');
        assert.equal(s.kernel, true, 'an IPv6 pair is forwarded by the kernel');
        // Not just flagged: the kernel's own counters moved (a rule that never matched would leave
        // the datagrams to the sockets, which forward them too).
        const listed = await run('nft', ['list', 'counters', 'table', 'netdev', relayTable(6, 47000)], { netns: NS.relay });
        const counted = [...listed.stdout.matchAll(/packets (\d+)/g)].map((m) => Number(m[1]));
        assert.ok(counted.length === 2 && counted.every((n) => n >= 50), `kernel counters: ${listed.stdout}`);
      }
      // Kernel counters are included: the 50 pings each way were counted wherever they went.
      assert.ok(s.aToB.packets - before.aToB.packets >= 50 && s.bToA.packets - before.bToA.packets >= 50, `${JSON.stringify(before)} -> ${JSON.stringify(s)}`);
    });

    await t.test("foreign IPv6 sources are dropped and counted: c's address sending to a's side of the bridged pair", async () => {
      const before = stats('ab').dropped.wrongSource;
      // A WireGuard-shaped transport message (type 4) from c's address and a port of its own.
      const script = `const s=require('dgram').createSocket('udp6');const m=Buffer.alloc(64);m[0]=4;let n=0;const go=()=>{s.send(m,47000,'${RELAY6}',()=>{if(++n<10)go();else s.close();});};go();`;
      await run(process.execPath, ['-e', script], { netns: NS.c });
      await sleep(600);
      const s = stats('ab');
      assert.equal(s.dropped.wrongSource - before, 10);
      assert.equal(s.a.latched, `[${A6}]:51820`, 'the side still belongs to a');
      await pings(NS.a, '10.77.0.2', 5);
    });
  } finally {
    relay?.kill('SIGTERM');
    await down();
    for (const ns of Object.values(NS)) assert.equal(existsSync(`/run/netns/${ns}`), false, `${ns} is left behind`);
  }
});
