/**
 * iperf3 over WireGuard: direct between two home NATs, then through the relay in each of the
 * given modes (same lab, same run, one after the other), each as a share of that run's direct
 * figure. The relay runs as its own process on the public host, started afresh for each mode.
 * Interleaving the modes inside each run keeps a changing machine load from favouring one of them.
 *
 * On 2 cores, where the two wireguard-go processes and the two iperf3 ends land decides the
 * figure (unpinned, direct alone went from 100 to 231 Mbit/s within one set, in two clusters). By
 * default side a (its wireguard-go and iperf3 client) is pinned to core 0 and side b to core 1, the
 * same for every path; the relay's kernel forwarding runs in the softirq of whichever side sends.
 * --no-pin leaves placement to the scheduler.
 *
 *   node dist/bench/relay-throughput.js [--runs 5] [--seconds 5] [--modes ingress,nat,userspace] [--no-pin]
 *
 * On the kernel data plane (WGP2P_DATA_PLANE=kernel, e.g. in `wgp2p lab vm`) both sides are the
 * kernel's WireGuard; compare the shares, not the Mbit/s, with the userspace figures (in a TCG
 * guest every byte is emulated).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Endpoint } from '../src/core/net/endpoint.js';
import { fileURLToPath } from 'node:url';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { parseTopology } from '../src/lab/topology.js';
import { natPair } from '../src/lab/topologies.js';
import { iperf3, msUntilPingReply, pinProcesses, startWireGuard } from '../src/lab/wireguard.js';
import { scaled } from '../src/lab/time-scale.js';
import { argNumber, median, progress } from './stats.js';

teardownOnExit();
const runs = argNumber('runs', 5);
const seconds = argNumber('seconds', 5);
const RELAY_HOST = fileURLToPath(new URL('../src/lab/relay-host.js', import.meta.url));
const mi = process.argv.indexOf('--modes');
const modes = (mi >= 0 ? process.argv[mi + 1] : 'ingress,nat').split(',');
for (const m of modes) if (!['ingress', 'nat', 'userspace'].includes(m)) throw new Error(`unknown mode ${m}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const lab = await Lab.up(parseTopology(natPair(`brelay${process.pid % 1000}`, 'restricted')));
try {
  const aIf = `br${process.pid % 10000}a`;
  const bIf = `br${process.pid % 10000}b`;
  const a = await startWireGuard(lab.ns('a'), aIf, { listenPort: 51820, address: '10.77.0.1/24', dataPlane: lab.dataPlane });
  await lab.recordWireGuard('a', aIf);
  const b = await startWireGuard(lab.ns('b'), bIf, { listenPort: 51820, address: '10.77.0.2/24', dataPlane: lab.dataPlane });
  await lab.recordWireGuard('b', bIf);
  const [devA, devB] = [await lab.device('a', aIf), await lab.device('b', bIf)];
  const pin = !process.argv.includes('--no-pin');
  // The kernel's WireGuard has no process to pin: it encrypts in the softirq and workers of
  // whichever core sends or receives. Only iperf3's two ends are pinned there.
  if (pin && lab.dataPlane === 'userspace' && ((await pinProcesses(lab.ns('a'), 'wireguard-go', 0)) !== 1 || (await pinProcesses(lab.ns('b'), 'wireguard-go', 1)) !== 1)) throw new Error('could not pin wireguard-go');
  const cpus = pin ? { client: 0, server: 1 } : undefined;
  const relayLog = (mode: string) => join(lab.logDir, `relay.relay-${mode}.log`);
  const logLines = (mode: string) => (existsSync(relayLog(mode)) ? readFileSync(relayLog(mode), 'utf8').split('\n') : []);
  const until = async (pred: () => boolean, ms: number, what: string) => {
    const deadline = Date.now() + scaled(ms);
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${scaled(ms)} ms waiting for ${what}`);
      await sleep(20);
    }
  };

  const startRelay = async (mode: string): Promise<number> => {
    const ready = () => logLines(mode).filter((l) => l.startsWith('{"ready":true')).length;
    const before = ready();
    const pid = lab.spawn('relay', `relay-${mode}`, process.execPath, [RELAY_HOST, '--address', '203.0.113.2', '--ports', '47000-47010', '--allocate', `ab,${a.publicKey},203.0.113.10,${b.publicKey},203.0.113.20`, '--quiet', ...(mode === 'userspace' ? ['--userspace'] : ['--kernel-mode', mode])]);
    // Its first line says it is ready (each run of a mode appends to the same log).
    await until(() => ready() > before, 5000, `the ${mode} relay to start`);
    return pid;
  };
  const stopRelay = async (pid: number) => {
    process.kill(pid, 'SIGTERM');
    for (let t = 0; t < 300; t++) {
      try {
        process.kill(pid, 0);
        await sleep(50);
      } catch {
        return;
      }
    }
    throw new Error('the relay did not exit');
  };

  let pathRetries = 0;
  /**
   * Points both sides at new endpoints with a fresh session (a relay only learns ports from
   * handshakes). Seen here: going back to direct after a relay run sometimes gets no handshake for
   * 15 s; re-triggering both sides recovers it, and the number of such retries is reported.
   */
  const path = async (aEndpoint: string, bEndpoint: string) => {
    await devA.set({ peers: [{ publicKey: b.publicKey, remove: true }] });
    await devB.set({ peers: [{ publicKey: a.publicKey, remove: true }] });
    for (let attempt = 0; ; attempt++) {
      await devA.set({ peers: [{ publicKey: b.publicKey, endpoint: Endpoint.parse(aEndpoint), allowedIps: ['10.77.0.2/32'], persistentKeepalive: 0 }, { publicKey: b.publicKey, persistentKeepalive: 25 }] });
      await devB.set({ peers: [{ publicKey: a.publicKey, endpoint: Endpoint.parse(bEndpoint), allowedIps: ['10.77.0.1/32'], persistentKeepalive: 0 }, { publicKey: a.publicKey, persistentKeepalive: 25 }] });
      try {
        await msUntilPingReply(lab.ns('a'), '10.77.0.2', 5000);
        return;
      } catch (err) {
        if (attempt >= 3) throw err;
        pathRetries++;
      }
    }
  };

  const direct: number[] = [];
  const relayed = new Map<string, number[]>(modes.map((m) => [m, []]));
  for (let i = 0; i < runs; i++) {
    await path('203.0.113.20:51820', '203.0.113.10:51820');
    direct.push((await iperf3(lab.ns('b'), lab.ns('a'), '10.77.0.2', seconds, cpus)).bitsPerSecond / 1e6);
    for (const mode of modes) {
      const latched = () => logLines(mode).filter((l) => l.startsWith('{"event":"latched"')).length;
      const latchedBefore = latched();
      const pid = await startRelay(mode);
      try {
        await path('203.0.113.2:47000', '203.0.113.2:47001');
        // The pair goes into the kernel right after both sides are confirmed (latched), and in nat
        // mode conntrack is flushed once more 1 s later: measure after that.
        if (mode !== 'userspace') {
          await until(() => latched() >= latchedBefore + 2, 15_000, `the ${mode} relay to confirm both sides`);
          await sleep(1500);
        }
        relayed.get(mode)!.push((await iperf3(lab.ns('b'), lab.ns('a'), '10.77.0.2', seconds, cpus)).bitsPerSecond / 1e6);
      } finally {
        await stopRelay(pid);
      }
    }
    progress(`run ${i + 1}/${runs}: direct ${direct[i].toFixed(0)} Mbit/s, ${modes.map((m) => `${m} ${relayed.get(m)![i].toFixed(0)} Mbit/s`).join(', ')}`);
  }
  const round = (x: number) => Math.round(x * 10) / 10;
  console.log(
    JSON.stringify(
      {
        benchmark: 'relay-throughput',
        seconds,
        dataPlane: lab.dataPlane === 'userspace' ? 'wireguard-go' : 'kernel',
        placement: !pin ? 'scheduler' : lab.dataPlane === 'userspace' ? 'side a (wireguard-go, iperf3 client) on core 0, side b on core 1' : 'iperf3 client on core 0, server on core 1 (the kernel encrypts where it sends and receives)',
        directMbps: { runs: direct.map(round), median: round(median(direct)) },
        relay: modes.map((mode) => {
          const r = relayed.get(mode)!;
          return {
            mode: mode === 'userspace' ? 'userspace' : `kernel fast path (${mode})`,
            relayMbps: { runs: r.map(round), median: round(median(r)) },
            shareOfDirectPct: round((100 * median(r)) / median(direct)),
            // Each run's relay figure over the direct figure measured just before it.
            perRunSharePct: { runs: r.map((x, i) => round((100 * x) / direct[i])), median: round(median(r.map((x, i) => (100 * x) / direct[i]))) },
          };
        }),
        pathRetries,
        target: 90,
      },
      null,
      2,
    ),
  );
} finally {
  await lab.down();
}
