/**
 * Routers that accept unsolicited packets on their WAN side (`restricted-leaky`, issue 11). The
 * first punch to reach such a router lands on the router itself, conntrack confirms that entry,
 * and the host behind it gets another public port toward that peer: the peer's NAT then filters
 * the host's packets out.
 *
 * Scenarios (each in a fresh lab, the hub on the public host):
 *  - leaky2: two agents, both behind restricted-leaky routers on the lab's one internet link (no
 *    router between the two NATs, so no TTL can stop between them: expected relayed);
 *  - leaky2isp: the same, each router behind an ISP router (`ispPair`), as on the internet;
 *  - home: two agents behind home routers (`restricted`), the baseline of the same run;
 *  - leakyRestricted: a behind restricted-leaky, b (started second) behind a home router;
 *  - restrictedLeaky: the same, the leaky side started second;
 *  - client: the seed-000 scenario, the device (agent) behind restricted-leaky and a plain client
 *    (wg-quick only) behind a home router;
 *  - clientLeaky: the plain client behind restricted-leaky, the device behind a home router.
 *
 * Agent pairs: from the second agent's wg-quick up and agent start to the hub committing the pair
 * to a direct path (read back from `status`: the commit time is the status's clock minus the
 * pair's `sinceMs`), and to the first ping reply (which may come through the relay). Clients:
 * from the client's wg-quick up to the first ping reply from the device, which its P2P config can
 * only get directly. A run that never gets there within the timeout is counted, not averaged.
 *
 *   node dist/bench/leaky.js [--runs 5] [--only home,leaky2,leaky2isp,leakyRestricted,restrictedLeaky,client,clientLeaky] [--timeout 20000]
 */
import os from 'node:os';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { Scenario } from '../src/lab/scenario.js';
import { behindRouters, ispPair, natPair, type PairProfile } from '../src/lab/topologies.js';
import { parseTopology } from '../src/lab/topology.js';
import { argNumber, argString, progress, summary } from './stats.js';

teardownOnExit();
const runs = argNumber('runs', 5);
const timeoutMs = argNumber('timeout', 20_000);
const SCENARIOS = ['home', 'leaky2', 'leaky2isp', 'leakyRestricted', 'restrictedLeaky', 'client', 'clientLeaky'] as const;
type Name = (typeof SCENARIOS)[number];
const only = argString('only', SCENARIOS.join(',')).split(',');
for (const o of only) if (!(SCENARIOS as readonly string[]).includes(o)) throw new Error(`--only: unknown scenario "${o}" (scenarios: ${SCENARIOS.join(', ')})`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  /** To the hub committing direct (agents), or to the first direct reply (clients); null: not within the timeout. */
  directMs: number | null;
  /** Agents only: to the first ping reply, whatever path carried it. */
  firstReplyMs?: number | null;
  /** Agents only: the hub's own figure, from both agents connected to the pair's first working path. */
  hubFirstPathMs?: number | null;
  /** What the pair ended on, and why (the hub's words). */
  mode?: string;
  reason?: string | null;
}

async function pingOnce(lab: Lab, host: string, target: string, t0: number): Promise<number | null> {
  for (;;) {
    const left = t0 + timeoutMs - performance.now();
    if (left <= 0) return null;
    const r = await lab.exec(host, 'ping', ['-n', '-q', '-i', '0.01', '-c', '1', '-w', String(Math.ceil(left / 1000)), target], { allowFail: true });
    if (r.code === 0) return Math.round(performance.now() - t0);
    await sleep(10);
  }
}

/** One letter per profile in lab names, which have 12 characters and start with this work's tag. */
const code = (p: PairProfile) => (p === 'restricted-leaky' ? 'l' : p[0]);

async function agents(i: number, pa: PairProfile, pb: PairProfile, isp = false): Promise<Run> {
  const lab = await Lab.up(parseTopology((isp ? ispPair : natPair)(`leaky${isp ? 'i' : ''}${code(pa)}${code(pb)}${process.pid % 100}${i % 10}`, pa, pb)));
  try {
    const s = new Scenario(lab, 'relay');
    await s.initHub();
    await s.addNode('a', 'agent', 'a');
    const b = await s.addNode('b', 'agent', 'b');
    await s.startAgent('a');
    const wall0 = Date.now();
    const t0 = performance.now();
    await s.startAgent('b', { wait: false });
    const reply = pingOnce(lab, 'a', b.address, t0);
    let directAt: number | null = null;
    let last: Awaited<ReturnType<Scenario['pair']>>;
    while (performance.now() - t0 < timeoutMs) {
      last = await s.pair('a', 'b');
      // The hub reads its clock after the CLI started (hundreds of ms under load), so "now" is when
      // the answer came back: at most the few ms of printing it late, never early.
      const answered = Date.now();
      if (last?.mode === 'direct' && last.confirmed) {
        directAt = answered - last.sinceMs;
        break;
      }
      await sleep(50);
    }
    const firstReplyMs = await reply;
    return { directMs: directAt === null ? null : directAt - wall0, firstReplyMs, hubFirstPathMs: directAt === null ? null : (last?.firstPathMs ?? null), mode: last?.mode, reason: last?.reason ?? null };
  } finally {
    await lab.down();
  }
}

async function client(i: number, deviceProfile: PairProfile, clientProfile: PairProfile): Promise<Run> {
  const t = behindRouters(`leakyc${code(deviceProfile)}${code(clientProfile)}${process.pid % 100}${i % 10}`, [
    { host: 'device', router: 'devhome', profile: deviceProfile },
    { host: 'client', router: 'cafe', profile: clientProfile },
  ]);
  const lab = await Lab.up(parseTopology(t));
  try {
    const s = new Scenario(lab);
    const device = await s.hubDeviceAndPhone();
    const t0 = performance.now();
    await s.startClient('phone');
    const directMs = await pingOnce(lab, 'client', device.address, t0);
    const phone = (await s.hubStatus()).nodes.find((n) => n.name === 'phone');
    return { directMs, mode: phone?.paths?.[0]?.path ?? 'unknown', reason: phone?.paths?.[0]?.reason ?? null };
  } finally {
    await lab.down();
  }
}

const RUN: Record<Name, (i: number) => Promise<Run>> = {
  home: (i) => agents(i, 'restricted', 'restricted'),
  leaky2: (i) => agents(i, 'restricted-leaky', 'restricted-leaky'),
  leaky2isp: (i) => agents(i, 'restricted-leaky', 'restricted-leaky', true),
  leakyRestricted: (i) => agents(i, 'restricted-leaky', 'restricted'),
  restrictedLeaky: (i) => agents(i, 'restricted', 'restricted-leaky'),
  client: (i) => client(i, 'restricted-leaky', 'restricted'),
  clientLeaky: (i) => client(i, 'restricted', 'restricted-leaky'),
};
const chosen = SCENARIOS.filter((n) => only.includes(n));
const results = new Map<Name, Run[]>(chosen.map((n) => [n, []]));
for (let i = 0; i < runs; i++) {
  const line: string[] = [];
  for (const n of chosen) {
    const r = await RUN[n](i);
    results.get(n)!.push(r);
    line.push(`${n} ${r.directMs ?? 'never'}${r.firstReplyMs !== undefined ? ` (reply ${r.firstReplyMs ?? 'never'})` : ''} ms${r.directMs === null ? ` [${r.mode}: ${r.reason}]` : ''}`);
  }
  progress(`run ${i + 1}/${runs}: ${line.join(', ')}`);
}

const figure = (xs: (number | null)[]) => {
  const got = xs.filter((x): x is number => x !== null);
  return { ...(got.length ? summary(got) : {}), reached: got.length, of: xs.length };
};
const out: Record<string, unknown> = {
  benchmark: 'leaky',
  note: "agents: second agent's wg-quick up and agent start -> hub commits direct (firstReply: first ping reply, any path; hubFirstPath: the hub's own figure from both agents connected to direct); clients: wg-quick up -> first direct reply. Target 1500 ms for the agent pairs; compare with 'home' measured in the same run.",
  loadAverage: os.loadavg().map((x) => Math.round(x * 10) / 10),
  timeoutMs,
};
for (const n of chosen) {
  const rs = results.get(n)!;
  out[n] = {
    directMs: figure(rs.map((r) => r.directMs)),
    ...(rs[0]?.firstReplyMs !== undefined ? { firstReplyMs: figure(rs.map((r) => r.firstReplyMs ?? null)), hubFirstPathMs: figure(rs.map((r) => r.hubFirstPathMs ?? null)) } : {}),
    notReached: rs.filter((r) => r.directMs === null).map((r) => `${r.mode}: ${r.reason}`),
  };
}
console.log(JSON.stringify(out, null, 2));
