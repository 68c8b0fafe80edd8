/**
 * Plain client starts → first direct ping reply from the agent's device, and client changes
 * network → direct again, on the seed-000 layout with home-router (restricted) NATs on both sides.
 *
 *   node dist/bench/join-roam.js [--runs 5] [--client-hub-keepalive 2]
 */
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { Scenario } from '../src/lab/scenario.js';
import { parseTopology } from '../src/lab/topology.js';
import { msUntilPingReply } from '../src/lab/wireguard.js';
import { argNumber, progress, rssMiB, summary } from './stats.js';

teardownOnExit();
const runs = argNumber('runs', 5);
const keepalive = argNumber('client-hub-keepalive', 1);

const topology = (name: string) =>
  parseTopology({
    name,
    routers: [
      { name: 'devhome', profile: 'restricted', wan: '203.0.113.10', lan: '192.168.10.0/24' },
      { name: 'cafe', profile: 'restricted', wan: '203.0.113.20', lan: '192.168.20.0/24' },
      { name: 'office', profile: 'restricted', wan: '203.0.113.30', lan: '192.168.30.0/24' },
    ],
    hosts: [
      { name: 'hub', network: 'internet', address: '203.0.113.2' },
      { name: 'device', network: 'devhome', address: '192.168.10.2' },
      { name: 'client', network: 'cafe', address: '192.168.20.2' },
    ],
  });

const join: number[] = [];
const roam: number[] = [];
const agentRss: number[] = [];
for (let i = 0; i < runs; i++) {
  const lab = await Lab.up(topology(`bjoin${process.pid % 1000}${i}`));
  try {
    const s = new Scenario(lab);
    const device = await s.hubDeviceAndPhone('device', 'client', ['--client-hub-keepalive', String(keepalive)]);
    join.push((await s.startClient('phone', { pingTarget: device.address }))!);
    agentRss.push(rssMiB(device.pid!));
    // Let the roam start from a settled state, at a random phase of the client's keepalive timer.
    await new Promise((r) => setTimeout(r, 1500 + Math.random() * keepalive * 1000));
    const t0 = performance.now();
    await lab.moveHost('client', 'office');
    await msUntilPingReply(lab.ns('client'), device.address, 20_000);
    roam.push(Math.round(performance.now() - t0));
    progress(`run ${i + 1}/${runs}: join ${join[i]} ms, roam ${roam[i]} ms`);
  } finally {
    await lab.down();
  }
}

console.log(
  JSON.stringify(
    {
      benchmark: 'join-roam',
      topology: 'seed-000, restricted NATs both sides',
      clientHubKeepaliveSec: keepalive,
      joinMs: { ...summary(join), target: 1000, anchor: 7700 },
      roamMs: { ...summary(roam), target: 2000, anchor: 8000 },
      agentRssMiB: summary(agentRss),
    },
    null,
    2,
  ),
);
