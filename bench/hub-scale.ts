/**
 * The hub with 1,000 nodes: cost of one device read (UAPI get + parse, and `wg show dump` for
 * comparison), the hub's mean poll time while running, and its resident memory.
 *
 *   node dist/bench/hub-scale.js [--nodes 1000] [--reads 200]
 */
import { join } from 'node:path';
import { run } from '../src/core/exec.js';
import { Store } from '../src/core/store.js';
import { getDevice } from '../src/core/wireguard/uapi.js';
import { addNode } from '../src/hub/directory.js';
import { writeHubConf } from '../src/hub/files.js';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { Scenario } from '../src/lab/scenario.js';
import { parseTopology } from '../src/lab/topology.js';
import { argNumber, median, progress, rssMiB } from './stats.js';

teardownOnExit();
const nodes = argNumber('nodes', 1000);
const reads = argNumber('reads', 200);

const lab = await Lab.up(parseTopology({ name: `bscale${process.pid % 1000}`, internet: { subnet: '203.0.112.0/22' }, hosts: [{ name: 'hub', network: 'internet', address: '203.0.112.2' }] }));
try {
  const s = new Scenario(lab);
  await s.cli(undefined, ['hub', 'init', '--dir', s.dir, '--endpoint', '203.0.112.2:51820', '--address', '10.96.0.1/20', '--proxied-subnet', '10.97.0.0/20']);
  const store = Store.open(s.dir);
  for (let i = 0; i < nodes; i++) addNode(store, { name: `n${i}`, kind: i % 10 === 0 ? 'agent' : 'client' });
  writeHubConf(s.dir, store);
  store.close();
  progress(`${nodes} nodes in the store`);
  await s.upConf('hub', join(s.dir, 'hub.conf'), s.hubIf);

  const uapi: number[] = [];
  for (let i = 0; i < reads; i++) {
    const t0 = performance.now();
    const dev = await getDevice(s.hubIf);
    uapi.push(performance.now() - t0);
    if (dev.peers.length !== nodes) throw new Error(`device has ${dev.peers.length} peers, expected ${nodes}`);
  }
  const dump: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await run('wg', ['show', s.hubIf, 'dump']);
    dump.push(performance.now() - t0);
  }
  progress('device reads measured; starting the hub');

  await s.startHub();
  await new Promise((r) => setTimeout(r, 5000));
  const status = JSON.parse((await s.cli(undefined, ['status', '--dir', s.dir, '--json'])).stdout) as { hub: { polls: number; meanPollMs: number } };
  const round = (x: number) => Math.round(x * 100) / 100;
  console.log(
    JSON.stringify(
      {
        benchmark: 'hub-scale',
        nodes,
        deviceReadMs: { uapiGetAndParseMedian: round(median(uapi)), uapiGetAndParseP99: round([...uapi].sort((a, b) => a - b)[Math.floor(uapi.length * 0.99)]), wgShowDumpMedian: round(median(dump)), reads },
        hubRunning: { minPollIntervalMs: 20, effectivePollIntervalMs: round(5000 / status.hub.polls), polls: status.hub.polls, meanPollMs: round(status.hub.meanPollMs), rssMiB: rssMiB(s.hubPid!) },
      },
      null,
      2,
    ),
  );
} finally {
  await lab.down();
}
