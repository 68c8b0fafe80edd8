/**
 * Two agents: second agent started (its interface brought up from its config, then `wgp2p agent
 * run`) → first ping reply between them.
 *  - home NATs (restricted) on both sides: the reply comes direct;
 *  - symmetric NATs on both sides: the hub knows direct cannot work and relays at once;
 *  - a home NAT and a symmetric one: nothing tells the hub in advance (the home NAT might not
 *    filter), so a 2 s direct attempt fails first, then the relay;
 *  - home NATs, the second agent enrolling with a join code: from `wgp2p join CODE` (key made on
 *    the device, one-time tunnel, registration, config written and up, agent started) to the
 *    first ping reply.
 *
 *   node dist/bench/mesh.js [--runs 5]
 */
import { fileURLToPath } from 'node:url';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { Scenario } from '../src/lab/scenario.js';
import { natPair } from '../src/lab/topologies.js';
import { parseTopology } from '../src/lab/topology.js';
import { msUntilPingReply } from '../src/lab/wireguard.js';
import { argNumber, progress, summary } from './stats.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

teardownOnExit();
const runs = argNumber('runs', 5);

async function joined(i: number): Promise<number> {
  const lab = await Lab.up(parseTopology(natPair(`bjoin${process.pid % 100}${i}`, 'restricted')));
  try {
    const s = new Scenario(lab, 'relay');
    await s.initHub();
    await s.addNode('a', 'agent', 'a');
    await s.startAgent('a');
    const added = JSON.parse((await s.cli(undefined, ['node', 'add', 'b', '--dir', s.dir, '--agent', '--join', '--json'])).stdout) as { address: string; code: string };
    const t0 = performance.now();
    lab.spawn('b', 'join-b', process.execPath, [CLI, 'join', added.code, '--interface', s.ifname('b'), '--dir', `${lab.logDir}/device-b`]);
    await lab.recordWireGuard('b', s.ifname('b'));
    await msUntilPingReply(lab.ns('a'), added.address, 20_000);
    return Math.round(performance.now() - t0);
  } finally {
    await lab.down();
  }
}

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
const enrolled: number[] = [];
for (let i = 0; i < runs; i++) {
  direct.push(await once('restricted', i));
  relayed.push(await once('symmetric', i));
  afterAttempt.push(await once('restricted', i, 'symmetric'));
  enrolled.push(await joined(i));
  progress(`run ${i + 1}/${runs}: direct ${direct[i]} ms, relayed at once ${relayed[i]} ms, relayed after a failed attempt ${afterAttempt[i]} ms, join code to direct ${enrolled[i]} ms`);
}
console.log(
  JSON.stringify(
    {
      benchmark: 'mesh',
      note: 'from the second agent\'s wg-quick up and agent start to the first ping reply between the two',
      twoAgentsDirectMs: { ...summary(direct), target: 1000, anchor: 7000 },
      directImpossibleRelayedMs: { ...summary(relayed), target: 3000, anchor: 7000, note: 'symmetric NATs both sides: the hub relays without an attempt' },
      joinCodeToDirectMs: { ...summary(enrolled), note: 'from "wgp2p join CODE" on the second device to the first ping reply from the first' },
      directFailedRelayedMs: { ...summary(afterAttempt), target: 3000, anchor: 7000, note: 'home NAT and symmetric NAT: a 2 s attempt fails, then the relay' },
    },
    null,
    2,
  ),
);
