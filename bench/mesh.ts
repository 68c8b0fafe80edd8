/**
 * Two agents: second agent started (its interface brought up from its config, then `wgp2p agent
 * run`) → first ping reply between them.
 *  - home NATs (restricted) on both sides: the reply comes direct;
 *  - symmetric NATs on both sides: the hub knows direct cannot work and relays at once;
 *  - a home NAT and a symmetric one: nothing tells the hub in advance (the home NAT might not
 *    filter), so a 2 s direct attempt fails first, then the relay.
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

async function once(profile: 'restricted' | 'symmetric', i: number, profileB = profile): Promise<number> {
  // natPair's public host "relay" plays the hub (which runs the relay).
  const t = natPair(`bmesh${process.pid % 100}${i}${profile[0]}${profileB[0]}`, profile, profileB);
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
const afterAttempt: number[] = [];
for (let i = 0; i < runs; i++) {
  direct.push(await once('restricted', i));
  relayed.push(await once('symmetric', i));
  afterAttempt.push(await once('restricted', i, 'symmetric'));
  progress(`run ${i + 1}/${runs}: direct ${direct[i]} ms, relayed at once ${relayed[i]} ms, relayed after a failed attempt ${afterAttempt[i]} ms`);
}
console.log(
  JSON.stringify(
    {
      benchmark: 'mesh',
      note: 'from the second agent\'s wg-quick up and agent start to the first ping reply between the two',
      twoAgentsDirectMs: { ...summary(direct), target: 1000, anchor: 7000 },
      directImpossibleRelayedMs: { ...summary(relayed), target: 3000, anchor: 7000, note: 'symmetric NATs both sides: the hub relays without an attempt' },
      directFailedRelayedMs: { ...summary(afterAttempt), target: 3000, anchor: 7000, note: 'home NAT and symmetric NAT: a 2 s attempt fails, then the relay' },
    },
    null,
    2,
  ),
);
