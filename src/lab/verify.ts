import { fileURLToPath } from 'node:url';
import { run } from '../core/exec.js';
import { IpAddress, type Family } from '../core/net/address.js';
import { Endpoint } from '../core/net/endpoint.js';
import { Lab } from './lab.js';
import { ProbeClients } from './probe-client.js';
import { addressOf, ipv4SubnetOf } from './plan.js';
import { scaled, timeScale, windowed } from './time-scale.js';
import { parseTopology } from './topology.js';
import { EXPECTED, PROBE_SERVERS, PROBE_SERVERS6, PUNCH_PEER, VERIFY_ROWS, verifyTopology, type Behaviour, type VerifyRow } from './truth-table.js';

const PROBE = fileURLToPath(new URL('./probe.js', import.meta.url));
/** The probes' command lines and output carry endpoints as text. */
const at = (ip: string, port: number) => Endpoint.of(IpAddress.parse(ip), port).toString();
const portOf = (endpoint: string | null | undefined) => Endpoint.tryParse(endpoint)?.port;
const addressOfText = (endpoint: string | null | undefined) => Endpoint.tryParse(endpoint)?.address.toString();
/** The probe servers' endpoints in each family. */
const SERVERS = {
  4: { s1: at(PROBE_SERVERS.s1, 3478), s1Alt: at(PROBE_SERVERS.s1, 3479), s2: at(PROBE_SERVERS.s2, 3478), tcp: PROBE_SERVERS.s1 },
  6: { s1: at(PROBE_SERVERS6.s1, 3478), s1Alt: at(PROBE_SERVERS6.s1, 3479), s2: at(PROBE_SERVERS6.s2, 3478), tcp: PROBE_SERVERS6.s1 },
} as const;
/**
 * A listening probe waits until the probe that sends to it has exited, not for a fixed time: with
 * other labs running on the 2 cores (load average 7-10), a sending probe took 0.8-1.3 s from start
 * to exit, and a fixed 1.5 s window lost its datagrams (hairpin and open-firewall rows failed).
 * This is only the bound for a sender that never runs.
 */
const LISTEN_MAX_MS = scaled(15_000);
/** The bound of an IPv6 punch that does not get through; one that does ends 0.5 s after both sides heard each other. */
const PUNCH_MAX_MS = windowed(5000);

export interface VerifyResult {
  row: string;
  profile: string;
  /** The family the row was measured in. */
  family: Family;
  measured: Behaviour;
  expected: Behaviour;
  /** Names of the columns where measured and expected differ. */
  mismatches: (keyof Behaviour)[];
}

/** The lab and the serving probe of each of its hosts (probe-client.ts). */
interface Probed {
  lab: Lab;
  probes: ProbeClients;
}

async function probe(p: Probed, host: string, args: string[]): Promise<Record<string, unknown>> {
  // A bound, not a measurement: an observe that nothing answers takes about 3 s, more under load.
  const lines = await p.probes.request(host, args, { timeoutMs: scaled(20_000) }).result;
  return lines[lines.length - 1] as Record<string, unknown>;
}

/**
 * Starts a `listen` probe; resolves its mapping as soon as it prints it, and what it received once
 * `stop` was called (when whatever was to send to it has sent).
 */
function listener(p: Probed, host: string, args: string[]): { observed: Promise<string | null>; received: Promise<string[]>; stop: () => void } {
  let onObserved: (v: string | null) => void = () => undefined;
  let onReceived: (v: string[]) => void = () => undefined;
  const observed = new Promise<string | null>((r) => (onObserved = r));
  const received = new Promise<string[]>((r) => (onReceived = r));
  const req = p.probes.request(host, ['listen', ...args, '--stdin', '--ms', String(LISTEN_MAX_MS)], {
    timeoutMs: LISTEN_MAX_MS + scaled(20_000),
    onLine: (line) => {
      const m = line as { observed?: string | null; received?: { tag: string }[] };
      if ('observed' in m) onObserved(m.observed ?? null);
      if (m.received) onReceived(m.received.map((x) => x.tag));
    },
  });
  const ended = () => {
    onObserved(null);
    onReceived([]);
  };
  req.result.then(ended, ended);
  return { observed, received, stop: req.stop };
}

const sendFrom = (p: Probed, host: string, to: string, tag: string, via?: string) =>
  probe(p, host, ['send', '--port', '0', '--to', to, '--tag', tag, ...(via ? ['--via', via] : [])]).catch(() => undefined);

/** The address of `family` anyone on the internet could send to for `node`, if there is one. */
function reachableAt(lab: Lab, node: string, family: Family): string | undefined {
  try {
    return lab.publicAddress(node, family);
  } catch {
    return undefined;
  }
}

async function measureRow(p: Probed, v: VerifyRow, index: number): Promise<Behaviour> {
  const lab = p.lab;
  const router = v.router ?? v.row;
  const a = `${router}-a`;
  const b = `${router}-b`;
  const family = v.family;
  const srv = SERVERS[family];
  const own = addressOf(lab.host(a).addresses, family)?.toString();
  const pub = reachableAt(lab, a, family);
  const nat = own !== undefined && pub !== own;
  const familyArgs = ['--family', String(family)];

  const obs = (await probe(p, a, ['observe', '--port', '40000', '--servers', [srv.s1, srv.s1Alt, srv.s2].join(',')])) as { observed: Record<string, string | null> };
  const seen = Object.values(obs.observed);
  const udp = seen.some((x) => x !== null);
  const mapping = !udp ? null : new Set(seen).size === 1 && seen[0] !== null ? 'independent' : 'dependent';
  const portPreserved = !udp ? null : portOf(obs.observed[srv.s1]) === 40000;
  const addressKept = !udp ? null : addressOfText(obs.observed[srv.s1]) === own;

  const tcp443 = ((await probe(p, a, ['tcp', '--to', at(srv.tcp, 443)])) as { ok: boolean }).ok;
  const tcp8080 = ((await probe(p, a, ['tcp', '--to', at(srv.tcp, 8080)])) as { ok: boolean }).ok;
  const tcp = tcp8080 && tcp443 ? 'all' : tcp443 ? '80/443' : 'none';

  let filtering: Behaviour['filtering'] = null;
  if (udp) {
    const f = (await probe(p, a, ['filter', '--port', '40001', '--server', srv.s1])) as { tags: string[] };
    filtering = f.tags.includes('other-addr') ? 'independent' : f.tags.includes('other-port') ? 'address' : 'address+port';
  }

  // A host with no address of this family anywhere (IPv6-only over IPv4, no IPv6 at all) cannot even be addressed.
  let unsolicited = false;
  if (pub !== undefined) {
    const quiet = listener(p, a, ['--port', '40002', ...familyArgs]);
    await quiet.observed;
    await sendFrom(p, 's2', at(pub, 40002), 'unsolicited');
    quiet.stop();
    unsolicited = (await quiet.received).includes('unsolicited');
  }

  let hairpin: boolean | null = null;
  if (nat && udp) {
    const l = listener(p, a, ['--port', '40003', '--server', srv.s1]);
    const mapped = await l.observed;
    if (mapped) await sendFrom(p, b, mapped, 'hairpin');
    l.stop();
    hairpin = (await l.received).includes('hairpin');
  }

  let portSurvivesProbe: boolean | null = null;
  if (nat && udp && pub !== undefined) {
    // Poison from s2's own probe port, the remote that the host then talks to.
    await sendFrom(p, 's1', at(pub, 40004), 'poison', srv.s2);
    const after = (await probe(p, a, ['observe', '--port', '40004', '--servers', srv.s2])) as { observed: Record<string, string | null> };
    portSurvivesProbe = portOf(after.observed[srv.s2]) === 40004;
  }

  let upnp: boolean | null = null;
  let natpmp: boolean | null = null;
  let pcp: boolean | null = null;
  if (v.upnp && pub !== undefined) {
    const asked = async (r: Promise<{ code: number }>, port: number) => ((await r).code === 0 ? at(pub, port) : null);
    upnp = await portMapForwards(p, a, 40005, () =>
      asked(lab.exec(a, 'upnpc', ['-e', 'wgp2p-verify', '-a', lab.address(a), '40005', '41005', 'UDP', '60'], { timeoutMs: scaled(8000), allowFail: true }), 41005));
    const gw = ipv4SubnetOf(lab.router(router).lan).gateway;
    natpmp = await portMapForwards(p, a, 40006, () =>
      asked(lab.exec(a, 'natpmpc', ['-g', gw.toString(), '-a', '41006', '40006', 'udp', '60'], { timeoutMs: scaled(8000), allowFail: true }), 41006));
    // PCP may grant another external port than the one suggested: the datagram goes where it says.
    pcp = await portMapForwards(p, a, 40008, async () => {
      const r = (await probe(p, a, ['pcp', '--gateway', gw.toString(), '--client', lab.address(a), '--port', '40008', '--external', '41008', '--lifetime', '60'])) as { ok: boolean; external?: string };
      // Only a grant on the router's public address can be reached from the internet.
      return r.ok && addressOfText(r.external) === pub ? r.external! : null;
    });
  }

  let punch: boolean | null = null;
  if (family === 6 && udp && own !== undefined) {
    // Both at once, each to the other's own address and port; the peer uses a port per row, as rows run in parallel.
    const peer = lab.address(PUNCH_PEER.host, 6);
    const peerPort = 40100 + index;
    const [x, y] = (await Promise.all([
      probe(p, a, ['punch', '--port', '40007', '--to', at(peer, peerPort), '--ms', String(PUNCH_MAX_MS)]),
      probe(p, PUNCH_PEER.host, ['punch', '--port', String(peerPort), '--to', at(own, 40007), '--ms', String(PUNCH_MAX_MS)]),
    ])) as { received: number }[];
    punch = x.received > 0 && y.received > 0;
  }

  return { udp, tcp, mapping, portPreserved, addressKept, filtering, unsolicited, hairpin, portSurvivesProbe, upnp, natpmp, pcp, punch };
}

/**
 * Asks the router for a mapping of `inside` with `request` (which says the external endpoint it
 * got, or null), then checks that a datagram from the internet to that endpoint arrives.
 */
async function portMapForwards(p: Probed, host: string, inside: number, request: () => Promise<string | null>): Promise<boolean> {
  const external = await request();
  if (external === null) return false;
  const l = listener(p, host, ['--port', String(inside)]);
  await l.observed;
  await sendFrom(p, 's2', external, 'mapped');
  l.stop();
  return (await l.received).includes('mapped');
}

export function mismatches(measured: Behaviour, expected: Behaviour): (keyof Behaviour)[] {
  return (Object.keys(expected) as (keyof Behaviour)[]).filter((k) => measured[k] !== expected[k]);
}

/** Builds the verify lab, measures every row, tears the lab down (always). */
export async function verifyProfiles(opts: { name?: string; onProgress?: (msg: string, done: number, total: number) => void } = {}): Promise<VerifyResult[]> {
  const name = opts.name ?? `verify${process.pid % 10000}`;
  const lab = await Lab.up(parseTopology(verifyTopology(name)), { onProgress: (m, d, t) => opts.onProgress?.(`build: ${m}`, d, t) });
  const probes = new ProbeClients((host) => lab.ns(host));
  try {
    lab.spawn('s1', 'probe', process.execPath, [PROBE, 'server', '--ipv6', '--ports', '3478,3479', '--peer', `${SERVERS[4].s2},${SERVERS[6].s2}`, '--tcp', '80,443,8080']);
    lab.spawn('s2', 'probe', process.execPath, [PROBE, 'server', '--ipv6', '--ports', '3478']);
    await waitForProbeServer(lab);
    // Rows share only the probe servers, so a few run at once; more would just queue on two cores.
    // One at a time where the lab is slowed (a TCG guest runs its vCPUs on one host thread): there
    // four rows' probes starved each other past what the rows measure (a leaky router's poisoned
    // conntrack entry expired, 30 s, before the host's probe ran; upnpc's 2 s discovery ran out).
    const workers = timeScale() > 1 ? 1 : 4;
    const results: VerifyResult[] = new Array(VERIFY_ROWS.length);
    let next = 0;
    let done = 0;
    const worker = async () => {
      for (let i = next++; i < VERIFY_ROWS.length; i = next++) {
        const v = VERIFY_ROWS[i];
        const measured = await measureRow({ lab, probes }, v, i);
        const expected = EXPECTED[v.row];
        results[i] = { row: v.row, profile: describe(v), family: v.family, measured, expected, mismatches: mismatches(measured, expected) };
        opts.onProgress?.(`probed ${v.row}`, ++done, VERIFY_ROWS.length);
      }
    };
    await Promise.all(Array.from({ length: workers }, worker));
    return results;
  } finally {
    await probes.close();
    await lab.down();
  }
}

function describe(v: VerifyRow): string {
  if (v.family === 4 && v.router === undefined) return [v.profile, v.hairpin ? '+hairpin' : '', v.upnp ? '+upnp' : ''].join('');
  const r = VERIFY_ROWS.find((x) => x.row === (v.router ?? v.row))!;
  if (r.ipv6Only) return 'IPv6-only host';
  return r.ipv6 ? `${r.ipv6} firewall` : `${r.profile}, no IPv6`;
}

async function waitForProbeServer(lab: Lab): Promise<void> {
  const deadline = Date.now() + scaled(5000);
  while (Date.now() < deadline) {
    const r = await run('ss', ['-Hlun'], { netns: lab.ns('s1'), allowFail: true });
    if (r.stdout.includes(':3479')) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error('the probe servers did not start');
}
