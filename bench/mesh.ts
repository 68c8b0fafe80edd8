/**
 * Two agents: second agent started → first ping reply between them. With home NATs on both sides
 * the reply comes direct; with symmetric NATs on both sides it comes through the hub's relay.
 *
 *   node dist/bench/mesh.js [--runs 5]
 */
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { Scenario } from '../src/lab/scenario.js';
import { natPair } from '../src/lab/topologies.js';
import { parseTopology } from '../src/lab/topology.js';
import { msUntilPingReply } from '../src/lab/wireguard.js';
import { argNumber, progress, summary } from './stats.js';

teardownOnExit();
const runs = argNumber('runs', 5);

async function once(profile: 'restricted' | 'symmetric', i: number): Promise<number> {
  // natPair's public host "relay" plays the hub (which runs the relay).
  const t = natPair(`bmesh${process.pid % 100}${i}${profile[0]}`, profile);
  const lab = await Lab.up(parseTopology(t));
  try {
    const s = new Scenario(lab, 'relay');
    await s.initHub();
    await s.addNode('a', 'agent', 'a');
    const b = await s.addNode('b', 'agent', 'b');
    await s.startAgent('a');
    // From b's interface coming up and its agent starting, without waiting for anything else.
    const t0 = performance.now();
    await s.startAgent('b', { wait: false });
    await msUntilPingReply(lab.ns('a'), b.address, 20_000);
    return Math.round(performance.now() - t0);
  } finally {
    await lab.down();
  }
}

const direct: number[] = [];
const relayed: number[] = [];
for (let i = 0; i < runs; i++) {
  direct.push(await once('restricted', i));
  relayed.push(await once('symmetric', i));
  progress(`run ${i + 1}/${runs}: direct ${direct[i]} ms, relayed ${relayed[i]} ms`);
}
console.log(
  JSON.stringify(
    {
      benchmark: 'mesh',
      note: 'from the second agent\'s wg-quick up and agent start to the first ping reply between the two',
      twoAgentsDirectMs: { ...summary(direct), target: 1000, anchor: 7000 },
      directImpossibleRelayedMs: { ...summary(relayed), target: 3000, anchor: 7000 },
    },
    null,
    2,
  ),
);
