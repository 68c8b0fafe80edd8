/**
 * Relay resident memory per active allocation. Three lab hosts on one segment: side A's node, the
 * relay, side B's node. For each count N (default 0, 100, 1000) a fresh relay process
 * (src/lab/relay-host.js) gets N allocations; every allocation is confirmed the way the relay
 * demands (B initiates, A's initiation is forwarded to B, B answers it by index) and then carries
 * a few datagrams each way; then the relay's RSS is read from /proc. With the kernel path the
 * relay's nftables rules and map elements are counted too (their memory is the kernel's, not in RSS;
 * in ingress mode each pair adds two chains of one rule, reached through one verdict map).
 *
 * Side A is one socket shared by every allocation (a node in many pairs); side B has one socket
 * per allocation, so that every pair is a distinct 5-tuple.
 *
 *   node dist/bench/relay-memory.js [--runs 5] [--counts 0,100,1000] [--modes ingress,nat,userspace] [--packets 5]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../src/core/exec.js';
import { fakeInitiation, fakeResponse, fakeTransport, senderIndex } from '../src/lab/fake-wireguard.js';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { parseTopology } from '../src/lab/topology.js';
import { relayTable } from '../src/relay/kernel-path.js';
import { argNumber, median, progress, rssMiB } from './stats.js';

const SELF = fileURLToPath(import.meta.url);
const RELAY_HOST = fileURLToPath(new URL('../src/lab/relay-host.js', import.meta.url));
const RELAY = '203.0.113.2';
const A_IP = '203.0.113.10';
const B_IP = '203.0.113.20';
const PORT_MIN = 40000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Pair {
  aKey: string;
  bKey: string;
  portA: number;
  portB: number;
}

function bind(): Promise<Socket> {
  const s = createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  return new Promise((r) => s.bind(0, () => r(s)));
}

const commands = () => {
  const lines: string[] = [];
  const waiters: ((l: string) => void)[] = [];
  let buf = '';
  process.stdin.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  return () => new Promise<string>((r) => (lines.length > 0 ? r(lines.shift()!) : waiters.push(r)));
};

/** One side's node, run inside its lab host: handshakes for every pair, then a little traffic on command. */
async function side(role: 'a' | 'b', pairsFile: string, packets: number): Promise<void> {
  const pairs = JSON.parse(readFileSync(pairsFile, 'utf8')) as Pair[];
  const next = commands();
  const data = fakeTransport(200);
  let received = 0;
  if (role === 'b') {
    const sockets = await Promise.all(pairs.map(() => bind()));
    sockets.forEach((s, k) =>
      s.on('message', (m) => {
        if (m[0] === 1) s.send(fakeResponse(pairs[k].aKey, senderIndex(m)), pairs[k].portB, RELAY);
        else if (m[0] === 4) received++;
      }),
    );
    // B first, so that A's initiation has a candidate to be forwarded to.
    sockets.forEach((s, k) => s.send(fakeInitiation(pairs[k].aKey), pairs[k].portB, RELAY));
    process.stdout.write('ready\n');
    await next();
    for (let k = 0; k < pairs.length; k++) for (let i = 0; i < packets; i++) sockets[k].send(data, pairs[k].portB, RELAY);
  } else {
    const s = await bind();
    let confirmed = 0;
    s.on('message', (m) => {
      if (m[0] === 2) confirmed++;
      else if (m[0] === 4) received++;
    });
    pairs.forEach((p) => s.send(fakeInitiation(p.bKey), p.portA, RELAY));
    for (let t = 0; confirmed < pairs.length && t < 200; t++) await sleep(50);
    process.stdout.write(`confirmed ${confirmed}\n`);
    await next();
    for (const p of pairs) for (let i = 0; i < packets; i++) s.send(data, p.portA, RELAY);
  }
  await next();
  process.stdout.write(`received ${received}\n`);
  process.exit(0);
}

function lineFrom(child: ChildProcess, prefix: string, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no "${prefix}" from a side process`)), timeoutMs);
    const onData = (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => l.startsWith(prefix));
      if (line !== undefined) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(line);
      }
    };
    child.stdout!.on('data', onData);
  });
}

interface Measured {
  rssMiB: number;
  nftRules: number;
  nftMapElements: number;
  confirmedPairs: number;
  forwardedShare: number;
}

async function nftSize(lab: Lab): Promise<{ rules: number; elements: number }> {
  let r = await lab.exec('relay', 'nft', ['-j', 'list', 'table', 'ip', relayTable(4, PORT_MIN)], { allowFail: true });
  if (r.code !== 0) r = await lab.exec('relay', 'nft', ['-j', 'list', 'table', 'netdev', relayTable(4, PORT_MIN)], { allowFail: true });
  if (r.code !== 0) return { rules: 0, elements: 0 };
  const items = (JSON.parse(r.stdout) as { nftables: Record<string, { elem?: unknown[] }>[] }).nftables;
  return { rules: items.filter((x) => 'rule' in x).length, elements: items.reduce((n, x) => n + (x.map?.elem?.length ?? 0) + (x.set?.elem?.length ?? 0), 0) };
}

async function measure(lab: Lab, n: number, mode: string, packets: number): Promise<Measured> {
  const kernel = mode !== 'userspace';
  // The relay only keys mac1 with these; random 32-byte values do (and 2,000 x25519 key pairs per count do not need making).
  const key = () => randomBytes(32).toString('base64');
  const pairs: Pair[] = Array.from({ length: n }, (_, k) => ({ aKey: key(), bKey: key(), portA: PORT_MIN + 2 * k, portB: PORT_MIN + 2 * k + 1 }));
  const allocFile = join(lab.logDir, `alloc-${n}.txt`);
  const pairsFile = join(lab.logDir, `pairs-${n}.json`);
  writeFileSync(allocFile, pairs.map((p, k) => `p${k},${p.aKey},${A_IP},${p.bKey},${B_IP}`).join('\n') + '\n');
  writeFileSync(pairsFile, JSON.stringify(pairs));
  const logName = `relay${n}${mode}${Date.now()}`;
  const pid = lab.spawn('relay', logName, process.execPath, [RELAY_HOST, '--address', RELAY, '--ports', `${PORT_MIN}-${PORT_MIN + 2 * Math.max(n, 1) + 10}`, '--allocate-file', allocFile, '--quiet', ...(kernel ? ['--kernel-mode', mode] : ['--userspace'])]);
  const children: ChildProcess[] = [];
  try {
    const log = join(lab.logDir, `relay.${logName}.log`);
    for (let t = 0; !readFileSync(log, 'utf8').includes('"ready"'); t++) {
      if (t > 1200) throw new Error(`relay did not start: ${readFileSync(log, 'utf8')}`);
      await sleep(50);
    }
    let confirmedPairs = 0;
    let forwardedShare = 1;
    if (n > 0) {
      const inNs = (ns: string, role: string) => {
        const c = spawn('ip', ['netns', 'exec', lab.ns(ns), process.execPath, SELF, role, pairsFile, String(packets)], { stdio: ['pipe', 'pipe', 'inherit'] });
        children.push(c);
        return c;
      };
      const b = inNs('dst', 'side-b');
      await lineFrom(b, 'ready');
      const a = inNs('src', 'side-a');
      confirmedPairs = Number((await lineFrom(a, 'confirmed')).split(' ')[1]);
      if (kernel) {
        // Wait for the pairs to be installed (nat: 6 map elements each; ingress: 2) before the traffic.
        const perPair = mode === 'nat' ? 6 : 2;
        for (let t = 0; (await nftSize(lab)).elements < perPair * confirmedPairs && t < 600; t++) await sleep(100);
      }
      a.stdin!.write('go\n');
      b.stdin!.write('go\n');
      await sleep(1000);
      a.stdin!.write('report\n');
      b.stdin!.write('report\n');
      const got = await Promise.all([lineFrom(a, 'received'), lineFrom(b, 'received')]);
      forwardedShare = got.reduce((s, l) => s + Number(l.split(' ')[1]), 0) / (2 * n * packets);
    }
    await sleep(500);
    const size = kernel ? await nftSize(lab) : { rules: 0, elements: 0 };
    return { rssMiB: rssMiB(pid), nftRules: size.rules, nftMapElements: size.elements, confirmedPairs, forwardedShare };
  } finally {
    for (const c of children) c.kill('SIGKILL');
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      progress(`the relay had exited: ${readFileSync(join(lab.logDir, `relay.${logName}.log`), 'utf8').slice(-2000)}`);
    }
    // Gone, or a zombie not yet reaped (kill(pid, 0) still succeeds on one).
    const exited = () => {
      try {
        return / Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return true;
      }
    };
    for (let t = 0; t < 600 && !exited(); t++) await sleep(100);
    // The relay deletes its table on SIGTERM; make sure nothing is left for the next process (the
    // next relay's table must not be deleted by this one still closing: hence the wait above).
    for (const family of ['ip', 'netdev']) await lab.exec('relay', 'nft', ['delete', 'table', family, relayTable(4, PORT_MIN)], { allowFail: true });
    await lab.exec('relay', 'conntrack', ['-F'], { allowFail: true });
  }
}

async function main(): Promise<void> {
  teardownOnExit();
  const runs = argNumber('runs', 5);
  const packets = argNumber('packets', 5);
  const opt = (name: string, fallback: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return (i >= 0 ? process.argv[i + 1] : fallback).split(',');
  };
  const counts = opt('counts', '0,100,1000').map(Number);
  const modes = opt('modes', 'ingress,nat,userspace');
  const lab = await Lab.up(
    parseTopology({
      name: `bmem${process.pid % 1000}`,
      hosts: [
        { name: 'relay', network: 'internet', address: RELAY },
        { name: 'src', network: 'internet', address: A_IP },
        { name: 'dst', network: 'internet', address: B_IP },
      ],
    }),
  );
  const out: Record<string, unknown>[] = [];
  try {
    for (const mode of modes) {
      const rows: { allocations: number; runs: Measured[] }[] = counts.map((n) => ({ allocations: n, runs: [] }));
      for (let i = 0; i < runs; i++) {
        for (const row of rows) {
          const m = await measure(lab, row.allocations, mode, packets);
          row.runs.push(m);
          progress(`${mode} run ${i + 1}/${runs}, ${row.allocations} allocations: ${m.rssMiB} MiB, ${m.confirmedPairs} confirmed, ${(100 * m.forwardedShare).toFixed(1)} % of the test datagrams forwarded, nft ${m.nftRules} rules / ${m.nftMapElements} map elements`);
        }
      }
      const base = median(rows[0].runs.map((r) => r.rssMiB));
      for (const row of rows) {
        const rss = median(row.runs.map((r) => r.rssMiB));
        out.push({
          mode,
          allocations: row.allocations,
          rssMiB: { runs: row.runs.map((r) => r.rssMiB), median: rss },
          kibPerAllocationOverFirstCount: row.allocations > counts[0] ? Math.round(((rss - base) * 1024 * 10) / (row.allocations - counts[0])) / 10 : null,
          confirmedPairs: median(row.runs.map((r) => r.confirmedPairs)),
          forwardedSharePct: row.allocations > 0 ? Math.round(1000 * median(row.runs.map((r) => r.forwardedShare))) / 10 : null,
          ...(mode !== 'userspace' ? { nftRules: median(row.runs.map((r) => r.nftRules)), nftMapElements: median(row.runs.map((r) => r.nftMapElements)) } : {}),
        });
      }
    }
  } finally {
    await lab.down();
  }
  console.log(JSON.stringify({ benchmark: 'relay-memory', runs, packetsPerDirectionPerAllocation: packets, results: out }, null, 2));
}

if (process.argv[2] === 'side-a' || process.argv[2] === 'side-b') await side(process.argv[2] === 'side-a' ? 'a' : 'b', process.argv[3], Number(process.argv[4]));
else await main();
