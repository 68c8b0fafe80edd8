/**
 * The hub at scale: what adding nodes costs (per batch of 1,000, and the last addNode), one
 * device read (UAPI get + parse, and `wg show dump` for comparison), admitting every node to the
 * interface, and the running hub: its start, its mean poll cost, its memory, and how soon a node
 * added while it runs is on its interface.
 *
 *   node dist/bench/hub-scale.js [--nodes 1000] [--reads 200] [--address 10.96.0.1/17]
 *     [--proxied-subnet 10.97.0.0/17] [--agent-every 10] [--agent-groups 1] [--run-seconds 5] [--cpu-prof DIR]
 *
 * Every `agent-every`-th node is an agent (10 %), spread over `agent-groups` groups; clients are
 * in every group, so each client config lists every agent. With all agents in one group the pair
 * coordinator creates agents × (agents − 1) / 2 pairs when the hub starts: that cost is part of
 * the hub's start figure.
 *
 * The idle figure: the hub's CPU share (percent of one core, from /proc over the run window) with
 * every node a peer on its device and nothing sent to it, and the share of the WireGuard process
 * it reads (wireguard-go; the kernel module has none: its work is in the hub's system time).
 *
 * The data plane is the lab's (WGP2P_DATA_PLANE, `kernel` in `wgp2p lab vm`). The bench reads the
 * hub's interface from outside its namespace: over UAPI on wireguard-go, with `wg show dump` under
 * `ip netns exec` on the kernel (a netlink socket belongs to the namespace that opened it); the hub
 * itself reads its device from inside, and /v1/stats says how (`uapi` or `netlink`).
 */
import { join } from 'node:path';
import { adminGet } from '../src/core/admin-socket.js';
import { run } from '../src/core/exec.js';
import { createLogger } from '../src/core/log.js';
import { addNode } from '../src/hub/directory.js';
import { writeNodeFiles } from '../src/hub/files.js';
import { PeerSync } from '../src/hub/peer-sync.js';
import { openStore } from '../src/hub/store/store.js';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { Scenario } from '../src/lab/scenario.js';
import { scaled } from '../src/lab/time-scale.js';
import { parseTopology } from '../src/lab/topology.js';
import { argNumber, argString, cpuSeconds, cpuSplit, findProcess, median, percentile, progress, rssMiB } from './stats.js';

teardownOnExit();
const nodes = argNumber('nodes', 1000);
const reads = argNumber('reads', 200);
const address = argString('address', '10.96.0.1/17');
const proxiedSubnet = argString('proxied-subnet', '10.97.0.0/17');
const agentEvery = argNumber('agent-every', 10);
const agentGroups = argNumber('agent-groups', 1);
const runSeconds = argNumber('run-seconds', 5);
const profileDir = argString('cpu-prof', '');
const BATCH = 1000;
const round = (x: number) => Math.round(x * 100) / 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Stats {
  hub: { device: string; polls: number; meanPollMs: number; nodes: number; revision: number };
}

const lab = await Lab.up(parseTopology({ name: `bscale${process.pid % 1000}`, internet: { subnet: '203.0.112.0/22' }, hosts: [{ name: 'hub', network: 'internet', address: '203.0.112.2' }] }));
try {
  const s = new Scenario(lab);
  await s.cli(undefined, ['hub', 'init', '--dir', s.dir, '--endpoint', '203.0.112.2:51820', '--address', address, '--proxied-subnet', proxiedSubnet]);

  // 1. Adding nodes, in-process (what `node add` does after its process started), one transaction each.
  const store = await openStore(s.dir);
  const batches: number[] = [];
  const each: number[] = [];
  const withFiles: number[] = [];
  const groups = Array.from({ length: agentGroups }, (_, g) => (g === 0 ? 'default' : `g${g}`));
  const agentsPerGroup = new Map<string, number>();
  let batchMs = 0;
  for (let i = 0; i < nodes; i++) {
    const agent = i % agentEvery === 0;
    const input = { name: `n${i}`, kind: agent ? ('agent' as const) : ('client' as const), groups: agent ? [groups[(i / agentEvery) % agentGroups]] : groups };
    if (agent) agentsPerGroup.set(input.groups[0], (agentsPerGroup.get(input.groups[0]) ?? 0) + 1);
    const last100 = i >= nodes - 100;
    const t0 = performance.now();
    const added = await addNode(store, input);
    const t1 = performance.now();
    each.push(t1 - t0);
    batchMs += t1 - t0;
    // Files only for the last 100: a client's config lists every agent of its groups (1,000 peers at 10,000 nodes).
    if (last100) {
      await writeNodeFiles(s.dir, store, added.node, added.token);
      withFiles.push(performance.now() - t0);
    }
    if ((i + 1) % BATCH === 0 || i === nodes - 1) {
      // The sum of the addNode calls: the files of the last 100 are not part of it.
      batches.push(batchMs);
      progress(`${i + 1}/${nodes} nodes in the store (this batch ${Math.round(batchMs)} ms, last addNode ${round(t1 - t0)} ms)`);
      batchMs = 0;
    }
  }
  const hub = await store.hub();
  const listed = await store.listNodes();
  await store.close();

  // 2. The interface: hub.conf has no peers; admitting every node is what `hub run` does at start.
  await s.upConf('hub', join(s.dir, 'hub.conf'), s.hubIf);
  const device = await lab.device('hub', s.hubIf);
  const ta = performance.now();
  const admitted = await new PeerSync(device, hub, createLogger('bench')).full(listed);
  const admitMs = performance.now() - ta;
  progress(`${admitted.set} peers admitted to ${s.hubIf} in ${Math.round(admitMs)} ms`);

  const read: number[] = [];
  for (let i = 0; i < reads; i++) {
    const t0 = performance.now();
    const dev = await device.get();
    read.push(performance.now() - t0);
    if (dev.peers.length !== admitted.set) throw new Error(`device has ${dev.peers.length} peers, expected ${admitted.set}`);
  }
  const dump: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await run('wg', ['show', s.hubIf, 'dump'], { netns: lab.ns('hub') });
    dump.push(performance.now() - t0);
  }
  progress('device reads measured; starting the hub');

  // 3. The running hub. Its own counters come from /v1/stats (the full status lists every pair).
  const sock = join(s.dir, 'hub.sock');
  const stats = () => adminGet<Stats>(sock, '/v1/stats');
  const th = performance.now();
  // --cpu-prof DIR: the hub writes a V8 CPU profile there when it exits, to see where idle time goes.
  const prof = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const pid = lab.spawn('hub', 'hub', process.execPath, [...prof, join(import.meta.dirname, '../src/cli/main.js'), 'hub', 'run', '--dir', s.dir, '--interface', s.hubIf], { WGP2P_LOG: process.env.WGP2P_LOG ?? 'info' });
  for (;;) {
    if ((await stats().catch(() => undefined)) !== undefined) break;
    if (performance.now() - th > 600_000) throw new Error('the hub did not answer within 10 minutes');
    await sleep(100);
  }
  const hubStartMs = performance.now() - th;
  progress(`hub answering after ${Math.round(hubStartMs)} ms; running ${runSeconds} s`);
  // Let the start settle (the pair coordinator's first pass, the first device reads).
  await sleep(scaled(1000));
  const wgPid = device.kind === 'uapi' ? findProcess((argv) => argv[0].endsWith('wireguard-go') && argv.includes(s.hubIf)) : undefined;
  const a = await stats();
  const split0 = cpuSplit(pid);
  const cpu0 = { hub: cpuSeconds(pid), wg: wgPid === undefined ? 0 : cpuSeconds(wgPid) };
  const ts = performance.now();
  await sleep(runSeconds * 1000);
  const split1 = cpuSplit(pid);
  const cpu1 = { hub: cpuSeconds(pid), wg: wgPid === undefined ? 0 : cpuSeconds(wgPid) };
  const b = await stats();
  const window = (performance.now() - ts) / 1000;
  const share = (x0: number, x1: number) => round(((x1 - x0) / window) * 100);
  const polls = b.hub.polls - a.hub.polls;
  const pollMs = polls > 0 ? (b.hub.meanPollMs * b.hub.polls - a.hub.meanPollMs * a.hub.polls) / polls : NaN;
  const rss = rssMiB(pid);

  // 4. A node added from the CLI while the hub runs: until its peer is on the interface.
  const tl = performance.now();
  const cliAdd = await s.cli(undefined, ['node', 'add', 'late', '--dir', s.dir, '--client', '--json']);
  const cliNodeAddMs = performance.now() - tl;
  const lateKey = (JSON.parse(cliAdd.stdout) as { publicKey: string }).publicKey;
  while (!(await device.get()).peers.some((p) => p.publicKey === lateKey)) {
    if (performance.now() - tl > scaled(30_000)) throw new Error(`the node added while the hub runs never reached the interface within ${scaled(30_000)} ms`);
    await sleep(20);
  }
  const liveAddToDeviceMs = performance.now() - tl;

  const last = each.slice(-100);
  const agents = [...agentsPerGroup.values()].reduce((x, y) => x + y, 0);
  const agentPairs = [...agentsPerGroup.values()].reduce((sum, k) => sum + (k * (k - 1)) / 2, 0);
  console.log(
    JSON.stringify(
      {
        benchmark: 'hub-scale',
        nodes,
        network: address,
        agents,
        agentGroups,
        addNode: {
          firstBatchMs: Math.round(batches[0]),
          lastBatchMs: Math.round(batches.at(-1)!),
          batchSize: BATCH,
          batchesMs: batches.map(Math.round),
          lastAddNodeMs: round(each.at(-1)!),
          last100: { medianMs: round(median(last)), p95Ms: round(percentile(last, 95)), maxMs: round(Math.max(...last)) },
          last100WithFiles: { medianMs: round(median(withFiles)), p95Ms: round(percentile(withFiles, 95)) },
          cliNodeAddWhileHubRunsMs: Math.round(cliNodeAddMs),
        },
        admitAllPeersMs: Math.round(admitMs),
        // On the kernel both figures are `wg show dump` (the bench's reader is wg(8) there).
        deviceReadMs: { peers: admitted.set, reader: device.kind, getAndParseMedian: round(median(read)), getAndParseP99: round(percentile(read, 99)), wgShowDumpMedian: round(median(dump)), reads },
        hubRunning: {
          startToAnsweringMs: Math.round(hubStartMs),
          agentPairs,
          minPollIntervalMs: 20,
          effectivePollIntervalMs: round((window * 1000) / polls),
          // From the interface itself: where the module loads, wg-quick makes a kernel interface whatever the lab's plane.
          dataPlane: device.kind === 'uapi' ? 'wireguard-go' : 'kernel',
          hubDeviceReader: b.hub.device,
          idleCpuPercentOfCore: { hub: share(cpu0.hub, cpu1.hub), hubUser: share(split0.user, split1.user), hubSystem: share(split0.system, split1.system), ...(wgPid === undefined ? {} : { wireguardGo: share(cpu0.wg, cpu1.wg) }), windowSeconds: round(window) },
          polls,
          meanPollMs: round(pollMs),
          rssMiB: rss,
          liveNodeAddToDeviceMs: Math.round(liveAddToDeviceMs),
        },
      },
      null,
      2,
    ),
  );
} finally {
  await lab.down();
}
