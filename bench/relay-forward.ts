/**
 * Relay forwarding of 1400-byte WireGuard-shaped (transport) datagrams, synthetic load, no
 * WireGuard. Three lab hosts on one segment: a sender, the relay, a receiver.
 *
 * The pair is confirmed the way the relay demands (the receiver answers the sender's initiation by
 * its index), from the sender's port 40000; then a generator floods from that port:
 *   --generator trafgen (default): trafgen (Debian netsniff-ng) writes prebuilt frames into a
 *     packet-mmap ring, one process on core 0; one Node socket offers only ~0.8 Gbit/s.
 *   --generator node: the earlier Node sender, for comparison.
 * The receiver counts in the kernel (an nftables counter that drops the datagrams before any
 * socket), so counting costs no userspace CPU. Offered = the sender's eth0 tx counter.
 * The relay runs with its kernel fast path (default) or in userspace only (--userspace); either way
 * its process is pinned to core 1 (taskset). The kernel path forwards in softirq, which runs where
 * the datagram is received: on a veth that is the sender's core, so RPS on the relay's interface
 * moves the relay's receive processing (and everything downstream of it: the forward, the bridge,
 * the receiver's counting) to core 1, away from the generator (--no-rps to leave it on core 0).
 * Rates come from counters sampled over a window that starts 1 s into the flood; CPU use per
 * core over the same window comes from /proc/stat.
 *
 * --family 6 runs the same over IPv6 (the relay's IPv6 kernel path is the ingress mode only). The
 * lab's topologies are IPv4 only for now, so IPv6 runs on a segment of namespaces made here
 * (relay-segment.ts: one bridge, like the lab's internet core); --segment own puts IPv4 on that
 * segment too, to compare the families on the same plumbing.
 *
 *   node dist/bench/relay-forward.js [--runs 5] [--seconds 4] [--userspace | --kernel-mode nat|ingress] [--no-rps] [--generator trafgen|node] [--family 4|6] [--segment lab|own]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../src/core/exec.js';
import { generateKeyPair } from '../src/core/wireguard/keys.js';
import { fakeInitiation, fakeResponse, fakeTransport, senderIndex } from '../src/lab/fake-wireguard.js';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { parseTopology } from '../src/lab/topology.js';
import { Segment } from './relay-segment.js';
import { argNumber, median, progress, rssMiB } from './stats.js';

const SELF = fileURLToPath(import.meta.url);
const RELAY_HOST = fileURLToPath(new URL('../src/lab/relay-host.js', import.meta.url));
const SIZE = 1400;
/** Per family: the relay, the sender (side A) and the receiver (side B), on one segment. */
const ADDRESSES = {
  4: { relay: '203.0.113.2', src: '203.0.113.10', dst: '203.0.113.20', prefix: 24 },
  6: { relay: '2001:db8:5::2', src: '2001:db8:5::10', dst: '2001:db8:5::20', prefix: 64 },
} as const;
const SENDER_PORT = 40000;
const RECEIVER_PORT = 40001;
const PORT_A = 47000;
const PORT_B = 47001;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the benchmark needs of a Lab; a Segment offers the same. */
type Hosts = Pick<Lab, 'ns' | 'exec' | 'spawn' | 'logDir' | 'down'>;

function bound(port: number, family: 4 | 6): Promise<Socket> {
  const s = createSocket({ type: family === 6 ? 'udp6' : 'udp4', sendBufferSize: 8 << 20, recvBufferSize: 8 << 20 });
  return new Promise((r) => s.bind(port, () => r(s)));
}

const once = (s: Socket) => new Promise<Buffer>((r) => s.once('message', (m) => r(m)));

/**
 * Run inside a lab host. The receiver (side B) initiates first, so that it has a candidate port;
 * the sender's initiation is then forwarded to it, and its response confirms both sides.
 */
async function endpoint(role: string, aKey: string, bKey: string, seconds: number, relayIp: string): Promise<void> {
  const family = relayIp.includes(':') ? 6 : 4;
  if (role === 'receiver') {
    const s = await bound(RECEIVER_PORT, family);
    s.send(fakeInitiation(aKey), PORT_B, relayIp);
    process.stdout.write('ready\n');
    const init = await once(s);
    await new Promise((r) => s.send(fakeResponse(aKey, senderIndex(init)), PORT_B, relayIp, r));
    process.stdout.write('answered\n');
    s.close();
    return;
  }
  const s = await bound(SENDER_PORT, family);
  const confirmed = once(s);
  s.send(fakeInitiation(bKey), PORT_A, relayIp);
  await Promise.race([confirmed, sleep(5000).then(() => Promise.reject(new Error('sender: no response through the relay')))]);
  process.stdout.write('confirmed\n');
  if (role === 'sender-node') {
    // Flood from this socket when told to (the earlier generator, kept for comparison).
    await new Promise((r) => process.stdin.once('data', r));
    const packet = fakeTransport(SIZE);
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end) {
      for (let i = 0; i < 64; i++) s.send(packet, PORT_A, relayIp);
      await new Promise((r) => setImmediate(r));
    }
    process.exit(0);
  }
  // trafgen sends from this port through a packet socket; keep the UDP socket so the port stays ours.
  process.stdin.once('data', () => process.exit(0));
}

function lineFrom(child: ChildProcess, text: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no "${text}" from ${child.spawnargs.join(' ')}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** Per-CPU jiffies from /proc/stat: [user+nice, system, softirq+irq, idle+iowait]. */
function cpuTimes(): number[][] {
  return readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((l) => /^cpu\d+ /.test(l))
    .map((l) => {
      const [user, nice, system, idle, iowait, irq, softirq] = l.split(/\s+/).slice(1).map(Number);
      return [user + nice, system, irq + softirq, idle + iowait];
    });
}

function cpuShare(t0: number[][], t1: number[][]): { user: number; system: number; softirq: number; idle: number }[] {
  return t1.map((c, i) => {
    const d = c.map((x, j) => x - t0[i][j]);
    const total = d.reduce((s, x) => s + x, 0) || 1;
    const pct = (x: number) => Math.round((1000 * x) / total) / 10;
    return { user: pct(d[0]), system: pct(d[1]), softirq: pct(d[2]), idle: pct(d[3]) };
  });
}

interface Sample {
  t: number;
  offered: number;
  forwarded: number;
  cpu: number[][];
}

async function sample(lab: Hosts, family: 4 | 6): Promise<Sample> {
  const [tx, counter] = await Promise.all([
    lab.exec('src', 'cat', ['/sys/class/net/eth0/statistics/tx_packets']),
    lab.exec('dst', 'nft', ['list', 'counter', family === 6 ? 'ip6' : 'ip', 'bench', 'got']),
  ]);
  return { t: performance.now(), offered: Number(tx.stdout.trim()), forwarded: Number(/packets (\d+)/.exec(counter.stdout)?.[1] ?? NaN), cpu: cpuTimes() };
}

async function main(): Promise<void> {
  teardownOnExit();
  const runs = argNumber('runs', 5);
  const seconds = argNumber('seconds', 4);
  const userspace = process.argv.includes('--userspace');
  const ki = process.argv.indexOf('--kernel-mode');
  const kernelMode = ki >= 0 ? process.argv[ki + 1] : 'ingress';
  const rps = !userspace && !process.argv.includes('--no-rps');
  const gi = process.argv.indexOf('--generator');
  const generator = gi >= 0 ? process.argv[gi + 1] : 'trafgen';
  if (generator !== 'trafgen' && generator !== 'node') throw new Error('--generator is trafgen or node');
  const fi = process.argv.indexOf('--family');
  const familyText = fi >= 0 ? process.argv[fi + 1] : '4';
  if (familyText !== '4' && familyText !== '6') throw new Error('--family is 4 or 6');
  const family = familyText === '6' ? 6 : 4;
  const si = process.argv.indexOf('--segment');
  const segment = family === 6 ? 'own' : si >= 0 ? process.argv[si + 1] : 'lab';
  if (segment !== 'lab' && segment !== 'own') throw new Error('--segment is lab or own');
  if (family === 6 && kernelMode === 'nat' && !userspace) throw new Error('--family 6 has no nat mode: the IPv6 kernel path is ingress only');
  const { relay: RELAY, src: SRC, dst: DST, prefix } = ADDRESSES[family];
  const results: { offeredGbps: number; forwardedGbps: number; lossPct: number; relayRssMiB: number; cpu: ReturnType<typeof cpuShare> }[] = [];
  for (let i = 0; i < runs; i++) {
    const name = `bfwd${process.pid % 1000}${i}`;
    const lab: Hosts =
      segment === 'own'
        ? await Segment.up(name, [
            { name: 'relay', addresses: [`${RELAY}/${prefix}`] },
            { name: 'src', addresses: [`${SRC}/${prefix}`] },
            { name: 'dst', addresses: [`${DST}/${prefix}`] },
          ])
        : await Lab.up(
            parseTopology({
              name,
              hosts: [
                { name: 'relay', network: 'internet', address: RELAY },
                { name: 'src', network: 'internet', address: SRC },
                { name: 'dst', network: 'internet', address: DST },
              ],
            }),
          );
    const children: ChildProcess[] = [];
    try {
      const [aKey, bKey] = [generateKeyPair().publicKey, generateKeyPair().publicKey];
      const relayArgs = [RELAY_HOST, '--address', RELAY, '--ports', `${PORT_A}-${PORT_B}`, '--allocate', `p0,${aKey},${SRC},${bKey},${DST}`, '--quiet', ...(userspace ? ['--userspace'] : ['--kernel-mode', kernelMode])];
      const pid = lab.spawn('relay', 'relay', 'taskset', ['-c', '1', process.execPath, ...relayArgs]);
      const log = join(lab.logDir, 'relay.relay.log');
      while (!readFileSync(log, 'utf8').includes('ready')) await sleep(50);

      const inNs = (ns: string, role: string) => {
        const c = spawn('ip', ['netns', 'exec', lab.ns(ns), process.execPath, SELF, role, aKey, bKey, String(seconds + 2), RELAY], { stdio: ['pipe', 'pipe', 'inherit'] });
        children.push(c);
        return c;
      };
      const receiver = inNs('dst', 'receiver');
      await lineFrom(receiver, 'ready');
      const sender = inNs('src', generator === 'node' ? 'sender-node' : 'sender');
      await Promise.all([lineFrom(receiver, 'answered'), lineFrom(sender, 'confirmed')]);
      await run('nft', ['-f', '-'], { netns: lab.ns('dst'), input: `table ${family === 6 ? 'ip6' : 'ip'} bench {\n  counter got {\n  }\n  chain pre {\n    type filter hook prerouting priority raw - 10; policy accept;\n    udp dport ${RECEIVER_PORT} counter name got drop\n  }\n}\n` });
      if (!userspace) await sleep(1500); // the relay installs the pair and flushes conntrack (again after 1 s)
      if (rps) await lab.exec('relay', 'sh', ['-c', 'echo 2 > /sys/class/net/eth0/queues/rx-0/rps_cpus']);

      if (generator === 'trafgen') {
        const mac = (ns: string) => lab.exec(ns, 'cat', ['/sys/class/net/eth0/address']).then((r) => r.stdout.trim());
        const [srcMac, relayMac] = await Promise.all([mac('src'), mac('relay')]);
        const conf = join(lab.logDir, 'trafgen.cfg');
        // trafgen fills in the UDP checksum (over the IPv6 pseudo-header too, where it is mandatory).
        const l3 = family === 6 ? `ipv6(sa=${SRC}, da=${RELAY}, hl=64)` : `ipv4(saddr=${SRC}, daddr=${RELAY}, ttl=64)`;
        writeFileSync(conf, `{ eth(da=${relayMac}, sa=${srcMac}), ${l3}, udp(sp=${SENDER_PORT}, dp=${PORT_A}), 0x04, 0x00, 0x00, 0x00, fill(0x00, ${SIZE - 4}) }\n`);
        // Leave the machine's socket memory and IRQ affinity alone; one trafgen process, on core 0.
        const tg = spawn('ip', ['netns', 'exec', lab.ns('src'), 'taskset', '-c', '0', 'trafgen', '--no-sock-mem', '--notouch-irq', '--no-cpu-stats', '--cpus', '1', '-o', 'eth0', '-i', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
        children.push(tg);
      } else {
        sender.stdin!.write('go\n');
      }
      await sleep(1000);
      const s0 = await sample(lab, family);
      await sleep(seconds * 1000);
      const s1 = await sample(lab, family);
      const dt = (s1.t - s0.t) / 1000;
      const gbps = (packets: number) => (packets * SIZE * 8) / dt / 1e9;
      const offered = s1.offered - s0.offered;
      const forwarded = s1.forwarded - s0.forwarded;
      const relayPid = Number((await run('pgrep', ['-P', String(pid)], { allowFail: true })).stdout.trim() || pid);
      results.push({ offeredGbps: gbps(offered), forwardedGbps: gbps(forwarded), lossPct: 100 * (1 - forwarded / offered), relayRssMiB: rssMiB(relayPid), cpu: cpuShare(s0.cpu, s1.cpu) });
      const r = results[i];
      progress(`run ${i + 1}/${runs}: offered ${r.offeredGbps.toFixed(3)} Gbit/s, forwarded ${r.forwardedGbps.toFixed(3)} Gbit/s, loss ${r.lossPct.toFixed(1)} %, cpu ${JSON.stringify(r.cpu)}`);
    } catch (err) {
      progress(`relay log:\n${readFileSync(join(lab.logDir, 'relay.relay.log'), 'utf8').slice(-3000)}`);
      throw err;
    } finally {
      for (const c of children) c.kill('SIGKILL');
      await lab.down();
    }
  }
  const round = (x: number) => Math.round(x * 1000) / 1000;
  const med = (f: (r: (typeof results)[number]) => number) => round(median(results.map(f)));
  console.log(
    JSON.stringify(
      {
        benchmark: 'relay-forward',
        family: `IPv${family}`,
        segment: segment === 'own' ? 'a bridge of namespaces made by the benchmark (relay-segment.ts)' : 'the lab',
        mode: userspace ? 'userspace, relay process pinned to core 1' : `kernel fast path (${kernelMode}); forwarding runs in softirq${rps ? ', steered to core 1 by RPS on the relay interface' : ' on the core that sends (core 0)'}`,
        generator: generator === 'trafgen' ? 'trafgen (packet mmap), one process on core 0' : 'one Node UDP socket',
        datagramBytes: SIZE,
        runs: results.length,
        offeredGbps: { runs: results.map((r) => round(r.offeredGbps)), median: med((r) => r.offeredGbps) },
        forwardedGbps: { runs: results.map((r) => round(r.forwardedGbps)), median: med((r) => r.forwardedGbps), target: 1, anchor: 0.5 },
        lossPct: { runs: results.map((r) => round(r.lossPct)), median: med((r) => r.lossPct) },
        cpuPct: ['core0', 'core1'].map((name, c) => ({
          core: name,
          user: med((r) => r.cpu[c]?.user ?? NaN),
          system: med((r) => r.cpu[c]?.system ?? NaN),
          softirq: med((r) => r.cpu[c]?.softirq ?? NaN),
          idle: med((r) => r.cpu[c]?.idle ?? NaN),
        })),
        relayRssMiB: med((r) => r.relayRssMiB),
      },
      null,
      2,
    ),
  );
}

if (['sender', 'sender-node', 'receiver'].includes(process.argv[2])) await endpoint(process.argv[2], process.argv[3], process.argv[4], Number(process.argv[5]), process.argv[6]);
else await main();
