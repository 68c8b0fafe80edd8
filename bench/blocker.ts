/**
 * A blocker between two agents behind home NATs: a firewall rule on one home router that drops
 * UDP to and from the other router's public address (the hub and its relay stay reachable).
 *
 *  - blocker added while the pair is direct and a ping runs every 100 ms: the longest gap between
 *    ping replies (the pair notices the dead path and moves to the relay);
 *  - while the pair is relayed, the share of pings lost (each direct retry borrows the path
 *    for its punch);
 *  - blocker removed after the pair has been relayed for a while (its retries are at their
 *    steady cadence; a random 0-10 s more, so the removal falls anywhere in its retry cycle):
 *    time until the hub has the pair direct again, both sides confirmed.
 *
 *   node dist/bench/blocker.js [--runs 5] [--hold 20]
 */
import { join } from 'node:path';
import { adminGet } from '../src/core/admin-socket.js';
import { hubStatusSchema, type PairStatusJson as PairStatus } from '../src/core/status.js';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { Scenario } from '../src/lab/scenario.js';
import { natPair } from '../src/lab/topologies.js';
import { parseTopology } from '../src/lab/topology.js';
import { argNumber, progress, summary } from './stats.js';

teardownOnExit();
const runs = argNumber('runs', 5);
const holdS = argNumber('hold', 20);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const BLOCK = `table inet blocker {
  chain forward {
    type filter hook forward priority filter - 5; policy accept;
    ip daddr 203.0.113.20 meta l4proto udp drop
    ip saddr 203.0.113.20 meta l4proto udp drop
  }
}
`;

async function once(i: number): Promise<{ outageMs: number; toDirectMs: number; relayedLossPct: number }> {
  // natPair: a behind home1 (203.0.113.10), b behind home2 (203.0.113.20), public host "relay" plays the hub.
  const lab = await Lab.up(parseTopology(natPair(`bblk${process.pid % 100}${i}`, 'restricted')));
  try {
    const s = new Scenario(lab, 'relay');
    const [, b] = await s.directPair('a', 'b');
    const pair = async () => hubStatusSchema.parse(await adminGet<unknown>(join(s.dir, 'hub.sock'), '/v1/status')).pairs[0];
    const waitPair = async (pred: (p: PairStatus) => boolean, timeoutMs: number, what: string) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const p = await pair();
        if (pred(p)) return;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(p)}`);
        await sleep(20);
      }
    };

    // -D prints each reply with its time, so the gap can be read off afterwards; -O each unanswered one.
    const ping = lab.exec('a', 'ping', ['-D', '-O', '-n', '-i', '0.1', '-w', String(holdS + 55), b.address], { allowFail: true, timeoutMs: (holdS + 70) * 1000 });
    await sleep(2000);
    const blockedAt = Date.now();
    await lab.exec('home1', 'nft', ['-f', '-'], { input: BLOCK });
    await waitPair((p) => p.mode === 'relay' && p.confirmed, 40_000, 'the relay');
    const relayedAt = Date.now();
    // A random extra wait, so the removal lands anywhere in the pair's retry cycle, not always at one phase of it.
    await sleep(holdS * 1000 + Math.random() * 10_000);
    const removedAt = Date.now();
    await lab.exec('home1', 'nft', ['delete', 'table', 'inet', 'blocker']);
    await waitPair((p) => p.mode === 'direct' && p.confirmed && !p.attempting, 30_000, 'direct again');
    const toDirectMs = Date.now() - removedAt;
    await lab.exec('a', 'pkill', ['-INT', 'ping'], { allowFail: true });
    const out = (await ping).stdout;
    const replies = [...out.matchAll(/^\[(\d+\.\d+)\] .*bytes from/gm)].map((m) => Math.round(Number(m[1]) * 1000)).filter((t) => t >= blockedAt - 500);
    let outageMs = 0;
    for (let k = 1; k < replies.length; k++) if (replies[k - 1] < removedAt) outageMs = Math.max(outageMs, replies[k] - replies[k - 1]);
    const inRelayed = (t: number) => t >= relayedAt + 1000 && t < removedAt;
    const answered = replies.filter(inRelayed).length;
    const unanswered = [...out.matchAll(/^\[(\d+\.\d+)\] no answer yet/gm)].map((m) => Math.round(Number(m[1]) * 1000)).filter(inRelayed).length;
    return { outageMs, toDirectMs, relayedLossPct: (100 * unanswered) / Math.max(1, answered + unanswered) };
  } finally {
    await lab.down();
  }
}

const outage: number[] = [];
const toDirect: number[] = [];
const relayedLoss: number[] = [];
for (let i = 0; i < runs; i++) {
  const r = await once(i);
  outage.push(r.outageMs);
  toDirect.push(r.toDirectMs);
  relayedLoss.push(Math.round(r.relayedLossPct * 100) / 100);
  progress(`run ${i + 1}/${runs}: blocker added -> pings answered again after a gap of ${r.outageMs} ms; ${r.relayedLossPct.toFixed(2)} % lost while relayed; removed -> direct after ${r.toDirectMs} ms`);
}
console.log(
  JSON.stringify(
    {
      benchmark: 'blocker',
      note: `UDP between the two home routers dropped, then allowed again after the pair was relayed for ${holdS}-${holdS + 10} s`,
      blockerAddedLongestPingGapMs: { ...summary(outage), target: null },
      pingsLostWhileRelayedPct: { ...summary(relayedLoss), target: null, note: 'pings at 10/s while the pair is relayed and retries direct every 8 s' },
      blockerRemovedToDirectMs: { ...summary(toDirect), target: 10_000, anchor: 'never (eduVPN prototype)' },
    },
    null,
    2,
  ),
);
