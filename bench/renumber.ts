/**
 * A home router's public address changes (a DHCP renew, a PPPoE reconnect) while two agents
 * behind home NATs are direct and a ping runs every 100 ms from a to b, and b's router is the one
 * renumbered: nothing changes on b's own link, so only traffic can tell.
 *
 *  - the longest gap between ping replies around the renumbering;
 *  - when the hub's device saw b at its new address;
 *  - when the pair was direct again over the new address (both sides confirmed), and whether it
 *    stayed direct for `--stay` seconds after.
 *
 * The renumbering falls 2-12 s after the ping starts, at a random phase of the agents' timers
 * (keepalive toward the hub, the 10 s report), so that no phase is favoured.
 *
 *   node dist/bench/renumber.js [--runs 5] [--stay 10] [--keep-logs DIR]   (DIR: the logs of a failed run)
 */
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { Scenario } from '../src/lab/scenario.js';
import { natPair } from '../src/lab/topologies.js';
import { parseTopology } from '../src/lab/topology.js';
import { startPing } from './ping-log.js';
import { argNumber, argString, progress, summary } from './stats.js';

teardownOnExit();
const runs = argNumber('runs', 5);
const stayS = argNumber('stay', 10);
const keepLogs = argString('keep-logs', '');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  gapMs: number;
  hubSawMs: number;
  directMs: number;
  stayed: boolean;
}

async function once(i: number): Promise<Run> {
  // natPair: a behind home1, b behind home2; the public host "relay" plays the hub.
  const lab = await Lab.up(parseTopology(natPair(`bren${process.pid % 100}${i}`, 'restricted')));
  try {
    return await measure(lab);
  } catch (err) {
    // A failed run's logs (hub, agents, wireguard-go) are what tells why.
    if (keepLogs) await cp(lab.logDir, join(keepLogs, lab.name), { recursive: true, filter: (src) => !src.endsWith('.sock') }).catch(() => undefined);
    throw err;
  } finally {
    await lab.down();
  }
}

async function measure(lab: Lab): Promise<Run> {
  const s = new Scenario(lab, 'relay');
  const [, b] = await s.directPair('a', 'b');
  const bKey = await s.publicKey('b');
  const ping = startPing(lab, 'a', b.address);
  try {
    await sleep(2000 + Math.random() * 10_000);
    const t0 = Date.now();
    const fresh = await lab.renumberWan('home2');
    let hubSawMs = -1;
    let directMs = -1;
    await s.waitFor(
      async () => {
        const st = await s.hubStatus();
        if (hubSawMs < 0 && st.nodes.find((n) => n.name === 'b')?.endpoint?.startsWith(`${fresh}:`)) hubSawMs = Date.now() - t0;
        const p = st.pairs?.find((x) => x.a === 'a' && x.b === 'b');
        const onA = await s.endpointOn(s.nodes.get('a')!.ifname, bKey);
        return hubSawMs >= 0 && p?.mode === 'direct' && !p.attempting && onA?.startsWith(`${fresh}:`) === true;
      },
      40_000,
      'the pair to be direct over b\'s new address',
    );
    directMs = Date.now() - t0;
    const before = (await s.pair('a', 'b'))!.history.length;
    await sleep(stayS * 1000);
    const after = (await s.pair('a', 'b'))!;
    const stayed = after.mode === 'direct' && after.history.length === before;
    const replies = (await ping.stop()).filter((t) => t >= t0 - 1000);
    let gapMs = 0;
    for (let k = 1; k < replies.length; k++) gapMs = Math.max(gapMs, replies[k] - replies[k - 1]);
    if (!replies.some((t) => t > t0 + directMs)) throw new Error('no ping reply after the pair was direct again');
    return { gapMs, hubSawMs, directMs, stayed };
  } finally {
    await ping.stop().catch(() => undefined);
  }
}

const gap: number[] = [];
const hubSaw: number[] = [];
const direct: number[] = [];
let stayed = 0;
for (let i = 0; i < runs; i++) {
  const r = await once(i);
  gap.push(r.gapMs);
  hubSaw.push(r.hubSawMs);
  direct.push(r.directMs);
  if (r.stayed) stayed++;
  progress(`run ${i + 1}/${runs}: longest gap ${r.gapMs} ms; hub saw the new address after ${r.hubSawMs} ms; direct again after ${r.directMs} ms; ${r.stayed ? 'stayed direct' : 'did NOT stay direct'} for ${stayS} s`);
}
console.log(
  JSON.stringify(
    {
      benchmark: 'renumber',
      note: "b's home router gets a new public address under a 10 Hz ping from a to b (both agents direct, home NATs both sides)",
      longestPingGapMs: { ...summary(gap), target: 2000, anchor: '4.1, 4.1, 9.1, 9.1 s (the moved agent\'s next packet to the hub)' },
      hubSawNewAddressMs: summary(hubSaw),
      directAgainMs: { ...summary(direct), note: 'until the hub had the pair direct and a pointed at b\'s new address (the test polls the CLI, ~100 ms per look)' },
      stayedDirect: { runs, stayed, seconds: stayS },
    },
    null,
    2,
  ),
);
