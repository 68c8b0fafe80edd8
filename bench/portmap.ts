/**
 * Port mapping (issue 11): how long until direct where only a router's port mapping makes direct
 * possible. miniupnpd on the lab router serves PCP, which the agent asks first.
 *
 *  - symmap: two agents behind symmetric NATs, the first one's router maps its port. From the
 *    second agent's start (its interface brought up from its config, then `wgp2p agent run`) to
 *    the first ping reply between them; the hub must then report the pair direct over the
 *    `mapped` candidate (any other path is an error, not a figure). The first agent has its
 *    mapping before the clock starts: the mapping itself is not what is timed.
 *  - client: a plain client (wg-quick only) behind a symmetric NAT, the device (an agent) behind
 *    a home router that maps its port. From the client's `wg-quick up` of its freshly made P2P
 *    config to its first ping reply from the device; the device must then talk to the client's
 *    NAT directly (its peer's endpoint), and its agent must say direct.
 *
 *  - home: the baseline in the same run, two agents behind home NATs (restricted) without port
 *    mapping, timed as symmap: on a shared 2-core machine the ratio of the two says more than
 *    either figure.
 *
 * The hub's own figure for symmap (`firstPathMs`: both agents connected -> direct) is given too,
 * without the second agent's start-up.
 *
 *   nice -n 5 node dist/bench/portmap.js [--runs 5] [--only symmap,client,home]
 */
import { loadavg } from 'node:os';
import { agentSocketPath } from '../src/agent/socket-path.js';
import { adminGet } from '../src/core/admin-socket.js';
import { agentStatusSchema, type AgentStatusJson } from '../src/core/status.js';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { Scenario } from '../src/lab/scenario.js';
import { parseTopology, type TopologyInput } from '../src/lab/topology.js';
import { msUntilPingReply } from '../src/lab/wireguard.js';
import { argNumber, argString, progress, summary } from './stats.js';

teardownOnExit();
const runs = argNumber('runs', 5);
const SCENARIOS = ['symmap', 'client', 'home'] as const;
type ScenarioName = (typeof SCENARIOS)[number];
const only = argString('only', SCENARIOS.join(',')).split(',');
for (const o of only) if (!(SCENARIOS as readonly string[]).includes(o)) throw new Error(`--only: unknown scenario "${o}" (scenarios: ${SCENARIOS.join(', ')})`);

/** miniupnpd refuses documentation ranges as its WAN address (src/lab/upnp-reserved.ts). */
function topology(name: string, a: { profile: 'symmetric' | 'restricted'; upnp: boolean }, b: { profile: 'symmetric' | 'restricted'; upnp: boolean }): TopologyInput {
  return {
    name,
    internet: { subnet: '192.0.3.0/24' },
    routers: [
      { name: 'ra', profile: a.profile, wan: '192.0.3.10', lan: '192.168.10.0/24', upnp: a.upnp },
      { name: 'rb', profile: b.profile, wan: '192.0.3.20', lan: '192.168.20.0/24', upnp: b.upnp },
    ],
    hosts: [
      { name: 'hub', network: 'internet', address: '192.0.3.2' },
      { name: 'a', network: 'ra', address: '192.168.10.2' },
      { name: 'b', network: 'rb', address: '192.168.20.2' },
    ],
  };
}

async function agentStatus(s: Scenario, name: string): Promise<AgentStatusJson> {
  return agentStatusSchema.parse(await adminGet<unknown>(agentSocketPath(s.nodes.get(name)!.ifname), '/v1/status'));
}

async function mapped(s: Scenario, name: string): Promise<void> {
  await s.waitFor(async () => (await agentStatus(s, name)).portMapping?.state === 'mapped', 30_000, `${name} to get a port mapping`);
  await s.waitFor(async () => (await s.hubStatus()).nodes.find((n) => n.name === name)?.nat?.portMapping?.usable === true, 10_000, `the hub to know ${name}'s mapping`);
}

interface Figures {
  ms: number;
  hubFirstPathMs?: number | null;
}

async function symmap(i: number): Promise<Figures> {
  return twoAgents(`portmapb${i}${process.pid % 100}`, { profile: 'symmetric', upnp: true }, { profile: 'symmetric', upnp: false }, 'mapped');
}

async function home(i: number): Promise<Figures> {
  return twoAgents(`portmaph${i}${process.pid % 100}`, { profile: 'restricted', upnp: false }, { profile: 'restricted', upnp: false }, 'public4');
}

async function twoAgents(name: string, ra: { profile: 'symmetric' | 'restricted'; upnp: boolean }, rb: { profile: 'symmetric' | 'restricted'; upnp: boolean }, want: 'mapped' | 'public4'): Promise<Figures> {
  const lab = await Lab.up(parseTopology(topology(name, ra, rb)));
  try {
    const s = new Scenario(lab);
    await s.initHub();
    await s.addNode('a', 'agent', 'a');
    const b = await s.addNode('b', 'agent', 'b');
    await s.startAgent('a');
    if (ra.upnp) await mapped(s, 'a');
    const t0 = performance.now();
    await s.startAgent('b', { wait: false });
    await msUntilPingReply(lab.ns('a'), b.address, 20_000);
    const ms = Math.round(performance.now() - t0);
    const pair = await s.waitPath('a', 'b', 'direct', 10_000);
    if (pair.candidate !== want) throw new Error(`${name}: expected direct over ${want}, the hub reports ${JSON.stringify(pair)}`);
    return { ms, hubFirstPathMs: pair.firstPathMs };
  } finally {
    await lab.down();
  }
}

async function client(i: number): Promise<Figures> {
  const lab = await Lab.up(parseTopology(topology(`portmapk${i}${process.pid % 100}`, { profile: 'restricted', upnp: true }, { profile: 'symmetric', upnp: false })));
  try {
    const s = new Scenario(lab);
    await s.initHub();
    const device = await s.addNode('device', 'agent', 'a');
    await s.startAgent('device');
    await s.addNode('phone', 'client', 'b');
    await mapped(s, 'device');
    // From the client's wg-quick up (startClient writes the config first, untimed) to the first reply.
    const ms = (await s.startClient('phone', { pingTarget: device.address }))!;
    const key = await s.publicKey('phone');
    const at = await s.endpointOn(device.ifname, key);
    if (!/^192\.0\.3\.20:\d+$/.test(at ?? '')) throw new Error(`client: the device reaches the phone at ${at}, not directly at its NAT`);
    await s.waitFor(async () => (await agentStatus(s, 'device')).peers.find((p) => p.name === 'phone')?.path === 'direct', 10_000, 'the device to say direct');
    return { ms };
  } finally {
    await lab.down();
  }
}

const NOTES: Record<ScenarioName, { key: string; extra: Record<string, unknown>; run: (i: number) => Promise<Figures> }> = {
  symmap: { key: 'symmetricPairOneSideMappedDirectMs', extra: { target: 1000, note: "symmetric x symmetric, one router maps (PCP): second agent's start -> first ping reply, direct over the mapped port" }, run: symmap },
  home: { key: 'homeNatsBaselineDirectMs', extra: { note: 'baseline in the same run: two agents behind home NATs (restricted), no port mapping, timed as symmap' }, run: home },
  client: { key: 'plainClientSymmetricToMappedDeviceMs', extra: { target: 1000, anchor: 'relayed (proxied config) before port mapping', note: "plain client behind symmetric, device behind restricted+upnp: client's wg-quick up -> first ping reply, direct" }, run: client },
};
const chosen = SCENARIOS.filter((n) => only.includes(n));
const results = new Map<ScenarioName, Figures[]>(chosen.map((n) => [n, []]));
const load: number[] = [];
for (let i = 0; i < runs; i++) {
  const line: string[] = [];
  for (const n of chosen) {
    const f = await NOTES[n].run(i);
    results.get(n)!.push(f);
    line.push(`${n} ${f.ms} ms${f.hubFirstPathMs != null ? ` (hub ${f.hubFirstPathMs} ms)` : ''}`);
  }
  const la = Number(loadavg()[0].toFixed(1));
  load.push(la);
  progress(`run ${i + 1}/${runs}: ${line.join(', ')}; load ${la}`);
}
const out: Record<string, unknown> = { benchmark: 'portmap', loadAverage1m: summary(load) };
for (const n of chosen) {
  const fs = results.get(n)!;
  out[NOTES[n].key] = { ...summary(fs.map((f) => f.ms)), ...NOTES[n].extra };
  const hub = fs.map((f) => f.hubFirstPathMs).filter((x): x is number => typeof x === 'number');
  if (hub.length) out[`${NOTES[n].key}HubFirstPath`] = { ...summary(hub), note: "the hub's own figure: both agents connected -> first path (direct)" };
}
console.log(JSON.stringify(out, null, 2));
