/**
 * Choosing the TCP/TLS transport (issue 12), in the lab: an agent "laptop" behind `udp-blocked`
 * (a hotel: UDP dropped from the LAN, TCP only to 80/443) and an agent "server" behind a home NAT.
 *
 *  - firstPingMs: from both agents up (both `wgp2p agent run` processes spawned, their interfaces
 *    already up with wg-quick) to the first ping reply from laptop to server (a ping every 100 ms
 *    from the moment the agents start). It includes the 3 s UDP deadline, the stream, the hub's
 *    relay allocation and both peers' handshakes through the relay. Target <= 5 s.
 *  - directAfterMoveMs: the laptop leaves the hotel for a home network (the lab moves its host;
 *    the agent sees the network change): from the move to the pair direct (hub status: direct
 *    first seen; settledAfterMoveMs: until no attempt runs). Target <= 5 s.
 *  - udpHandshakeMs: for the deadline's choice, how long the server's first handshake with the
 *    hub takes over UDP (from `wg-quick up` returning to the device reporting a handshake).
 *
 *   node dist/bench/stream-choice.js [--runs 5] [--keep-logs DIR [--keep-all]]   (DIR: the logs of failed runs, of all with --keep-all)
 */
import { spawn } from 'node:child_process';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { adminGet } from '../src/core/admin-socket.js';
import { hubStatusSchema, type HubStatusJson } from '../src/core/status.js';
import { getDevice } from '../src/core/wireguard/uapi.js';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { Scenario } from '../src/lab/scenario.js';
import { behindRouters } from '../src/lab/topologies.js';
import { parseTopology } from '../src/lab/topology.js';
import { startPing } from './ping-log.js';
import { argNumber, argString, progress, summary } from './stats.js';

teardownOnExit();
const runs = argNumber('runs', 5);
const keepLogs = argString('keep-logs', '');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CLI = join(import.meta.dirname, '..', 'src', 'cli', 'main.js');

interface Run {
  firstPingMs: number;
  directAfterMoveMs: number;
  /** Until no attempt runs any more (the hub re-decides once more when the agent's network-change hello lands). */
  settledAfterMoveMs: number;
  udpHandshakeMs: number;
}

async function once(i: number): Promise<Run> {
  const lab = await Lab.up(
    parseTopology(
      behindRouters(`tcpbench${process.pid % 100}${i}`, [
        { host: 'laptop', router: 'hotel', profile: 'udp-blocked' },
        { host: 'server', router: 'office', profile: 'restricted' },
      ], { empty: [{ router: 'home', profile: 'restricted' }] }),
    ),
  );
  try {
    const r = await measure(lab);
    if (keepLogs && process.argv.includes('--keep-all')) await cp(lab.logDir, join(keepLogs, lab.name), { recursive: true, filter: (src) => !src.endsWith('.sock') }).catch(() => undefined);
    return r;
  } catch (err) {
    if (keepLogs) await cp(lab.logDir, join(keepLogs, lab.name), { recursive: true, filter: (src) => !src.endsWith('.sock') }).catch(() => undefined);
    throw err;
  } finally {
    await lab.down();
  }
}

async function hubStatus(s: Scenario): Promise<HubStatusJson> {
  return hubStatusSchema.parse(await adminGet<unknown>(join(s.dir, 'hub.sock'), '/v1/status'));
}

async function until(what: string, timeoutMs: number, pred: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await pred().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function measure(lab: Lab): Promise<Run> {
  const s = new Scenario(lab);
  await s.initHub();
  const laptop = await s.addNode('laptop', 'agent', 'laptop');
  const server = await s.addNode('server', 'agent', 'server');
  // Interfaces up first: the figure starts when both agents do.
  await s.upConf('laptop', join(s.dir, 'nodes', 'laptop.conf'), laptop.ifname);
  const upAt = Date.now();
  await s.upConf('server', join(s.dir, 'nodes', 'server.conf'), server.ifname);
  const hubKey = s.hubPublicKey();
  let udpHandshakeMs = -1;
  await until("server's UDP handshake with the hub", 10_000, async () => {
    const hs = (await getDevice(server.ifname)).peers.find((p) => p.publicKey === hubKey)?.lastHandshakeMs ?? 0;
    if (hs > 0) udpHandshakeMs = Math.max(0, hs - upAt);
    return hs > 0;
  });
  const ping = startPing(lab, 'laptop', server.address);
  let replies: number[] = [];
  try {
    const t0 = Date.now();
    for (const n of [server, laptop]) {
      n.pid = lab.spawn(n.host, `agent-${n.name}`, process.execPath, [CLI, 'agent', 'run', '--config', join(s.dir, 'nodes', `${n.name}.agent.json`), '--interface', n.ifname], { WGP2P_LOG: process.env.WGP2P_LOG ?? 'info' });
    }
    await until('the pair relayed over the stream', 20_000, async () => {
      const p = (await hubStatus(s)).pairs.find((x) => [x.a, x.b].includes('laptop'));
      return p?.mode === 'relay' && p.confirmed && (p.streamSides ?? []).includes('laptop');
    });
    await sleep(1500);
    const t1 = Date.now();
    await lab.moveHost('laptop', 'home', undefined, { rebind: false });
    let directAfterMoveMs = -1;
    await until('the pair direct after the move, no attempt running', 20_000, async () => {
      const p = (await hubStatus(s)).pairs.find((x) => [x.a, x.b].includes('laptop'));
      if (p?.mode === 'direct' && directAfterMoveMs < 0) directAfterMoveMs = Date.now() - t1;
      return p?.mode === 'direct' && !p.attempting;
    });
    const settledAfterMoveMs = Date.now() - t1;
    replies = await ping.stop();
    const first = replies.find((r) => r >= t0);
    if (first === undefined) throw new Error('no ping reply at all');
    return { firstPingMs: first - t0, directAfterMoveMs, settledAfterMoveMs, udpHandshakeMs };
  } finally {
    if (replies.length === 0) await ping.stop().catch(() => undefined);
  }
}

const results: Run[] = [];
for (let i = 0; i < runs; i++) {
  const r = await once(i);
  progress(`run ${i + 1}/${runs}: first ping ${r.firstPingMs} ms, direct after the move ${r.directAfterMoveMs} ms, UDP handshake ${r.udpHandshakeMs} ms`);
  results.push(r);
}
console.log(
  JSON.stringify(
    {
      bench: 'stream-choice',
      from: 'both agents up (processes spawned, interfaces already up) / the move of the laptop out of the udp-blocked network',
      firstPingMs: summary(results.map((r) => r.firstPingMs)),
      directAfterMoveMs: summary(results.map((r) => r.directAfterMoveMs)),
      settledAfterMoveMs: summary(results.map((r) => r.settledAfterMoveMs)),
      udpHandshakeMs: summary(results.map((r) => r.udpHandshakeMs)),
      targets: { firstPingMs: 5000, directAfterMoveMs: 5000 },
    },
    null,
    2,
  ),
);
