import type { KindId } from '../core/candidates/kind.js';
import { diagnoseCell } from './cell-diagnosis.js';
import { Lab, type Progress } from './lab.js';
import { Scenario } from './scenario.js';
import { parseTopology, type NatProfile, type TopologyInput } from './topology.js';
import { msUntilPingReply } from './wireguard.js';

/**
 * The NAT matrix: two agents for every pair of NAT profiles (and udp-blocked against each), one
 * hub with its relay, real WireGuard. Each cell is its own group, so the hub coordinates exactly
 * one pair per cell while all of them run at once. What each cell did is read from the hub's pair
 * status and checked on the agents' devices and with pings through the tunnel.
 *
 * The family matrix is the same for address families (the eduVPN report's table of IPv4-only,
 * dual-stack and IPv6-only hosts against each other), in a lab of its own with a dual-stack hub.
 */

export const MATRIX_PROFILES = ['open', 'firewall', 'cone', 'restricted', 'symmetric', 'restricted-leaky', 'symmetric+upnp', 'cgnat-sym'] as const;
export type MatrixProfile = (typeof MATRIX_PROFILES)[number] | 'udp-blocked';
/** tcp-relay: relayed with a side's half of the allocation on the hub's TLS stream (core/candidates/tcp-relay.ts). */
export type CellPath = 'direct' | 'relay' | 'tcp-relay' | 'not connected' | 'none';

/** What one pair did, whatever the table. */
export interface CellOutcome {
  nodes: [string, string];
  path: CellPath;
  /** How the path was verified on the first agent's device: the endpoint it sends to. */
  endpoint: string | null;
  /** The same on the second agent's device (a relay bridging families has one side in each). */
  endpointB: string | null;
  /** The family and candidate kind the hub reports for the pair. */
  family: 4 | 6 | null;
  candidate: KindId | null;
  /** From both agents connected to the path carrying traffic (hub's measurement). */
  firstPathMs: number | null;
  /** Ping replies out of those sent through the tunnel (to the second agent's IPv4 tunnel address), after the path was decided. */
  replies: number;
  sent: number;
  reason: string | null;
  /** Where pings went unanswered: the state of both devices, the hub and the relay just after (cell-diagnosis.ts). */
  diagnosis?: string;
}

export interface MatrixCell extends CellOutcome {
  a: MatrixProfile;
  b: MatrixProfile;
}

const SHORT: Record<MatrixProfile, string> = { open: 'o', firewall: 'f', cone: 'c', restricted: 'r', symmetric: 's', 'restricted-leaky': 'l', 'symmetric+upnp': 'p', 'cgnat-sym': 'g', 'udp-blocked': 'u' };
const PUBLIC_LANS: Partial<Record<MatrixProfile, number>> = { open: 0, firewall: 32 };
/**
 * How each row's router is built. `symmetric+upnp` maps per destination but serves UPnP-IGD, NAT-PMP
 * and PCP; `cgnat-sym` is a home router behind a carrier NAT that maps per destination (as many
 * mobile carriers do), where the home router's own port mapping reaches only the carrier's network.
 */
const ROUTER: Record<MatrixProfile, { name: string; profile: NatProfile; upnp?: boolean; carrier?: 'symmetric' }> = {
  open: { name: 'open', profile: 'open' },
  firewall: { name: 'firewall', profile: 'firewall' },
  cone: { name: 'cone', profile: 'cone' },
  restricted: { name: 'restricted', profile: 'restricted' },
  symmetric: { name: 'symmetric', profile: 'symmetric' },
  'restricted-leaky': { name: 'leaky', profile: 'restricted-leaky' },
  'symmetric+upnp': { name: 'symupnp', profile: 'symmetric', upnp: true },
  'cgnat-sym': { name: 'cgnsym', profile: 'cgnat', carrier: 'symmetric' },
  'udp-blocked': { name: 'udp-blocked', profile: 'udp-blocked' },
};
/** miniupnpd refuses to map on a reserved WAN address (203.0.113.0/24 is one), so the matrix internet is public-looking. */
export const MATRIX_INTERNET = '192.0.3.0/24';
export const MATRIX_HUB = '192.0.3.2';

/** Host (and node) name of profile p's first ("a") or second ("b") agent. */
export function hostFor(p: MatrixProfile, which: 'a' | 'b'): string {
  return `${SHORT[p]}${which}`;
}

/** The cells: every unordered pair of profiles (a profile against itself uses its second agent), then udp-blocked against each. */
export function matrixCells(): { a: MatrixProfile; b: MatrixProfile; nodes: [string, string] }[] {
  const cells: { a: MatrixProfile; b: MatrixProfile; nodes: [string, string] }[] = [];
  MATRIX_PROFILES.forEach((a, i) => {
    for (const b of MATRIX_PROFILES.slice(i)) cells.push({ a, b, nodes: [hostFor(a, 'a'), hostFor(b, a === b ? 'b' : 'a')] });
  });
  for (const a of MATRIX_PROFILES) cells.push({ a, b: 'udp-blocked', nodes: [hostFor(a, 'a'), hostFor('udp-blocked', 'a')] });
  return cells;
}

export function matrixTopology(name: string): TopologyInput {
  const routers: NonNullable<TopologyInput['routers']> = [];
  const hosts: TopologyInput['hosts'] = [{ name: 'hub', network: 'internet', address: MATRIX_HUB }];
  let i = 0;
  for (const p of [...MATRIX_PROFILES, 'udp-blocked'] as const) {
    for (const which of p === 'udp-blocked' ? (['a'] as const) : (['a', 'b'] as const)) {
      i++;
      const { name, profile, upnp, carrier } = ROUTER[p];
      const router = `${name.slice(0, 10)}-${which}`;
      const pub = PUBLIC_LANS[p];
      // Open and firewall routers route public addresses (the internet core routes their LAN to them).
      const lan = pub !== undefined ? `198.51.100.${pub + (which === 'b' ? 16 : 0)}/28` : `192.168.${10 + i}.0/24`;
      const address = pub !== undefined ? `198.51.100.${pub + (which === 'b' ? 16 : 0) + 2}` : `192.168.${10 + i}.2`;
      routers.push({ name: router, profile, wan: `192.0.3.${10 + i}`, lan, ...(upnp ? { upnp } : {}), ...(carrier ? { carrier } : {}) });
      hosts.push({ name: hostFor(p, which), network: router, address });
    }
  }
  return { name, internet: { subnet: MATRIX_INTERNET }, routers, hosts };
}

// ---- the family matrix --------------------------------------------------------------------------

/** Hosts by address family: IPv4-only, dual-stack, IPv6-only; and dual-stack behind a symmetric IPv4 NAT. */
export const FAMILY_CLASSES = ['ipv4', 'dual', 'ipv6', 'sym-dual'] as const;
export type FamilyClass = (typeof FAMILY_CLASSES)[number];

export interface FamilyCell extends CellOutcome {
  a: FamilyClass;
  b: FamilyClass;
}

/** As the report's table heads them. */
export const FAMILY_LABEL: Record<FamilyClass, string> = { ipv4: 'IPv4', dual: 'IPv4+IPv6', ipv6: 'IPv6', 'sym-dual': 'symmetric IPv4+IPv6' };
const FAMILY_SHORT: Record<FamilyClass, string> = { ipv4: 'v4', dual: 'ds', ipv6: 'v6', 'sym-dual': 'sd' };

export function familyHost(c: FamilyClass, which: 'a' | 'b'): string {
  return `${FAMILY_SHORT[c]}${which}`;
}

/**
 * The report's table (IPv4, IPv4+IPv6 and IPv6 against each other, a pair once), and a pair of
 * dual-stack hosts whose IPv4 NATs are both symmetric: relayed over IPv4, direct over IPv6.
 */
export function familyCells(): { a: FamilyClass; b: FamilyClass; nodes: [string, string] }[] {
  const classes = ['ipv4', 'dual', 'ipv6'] as const;
  const cells: { a: FamilyClass; b: FamilyClass; nodes: [string, string] }[] = [];
  classes.forEach((a, i) => {
    for (const b of classes.slice(i)) cells.push({ a, b, nodes: [familyHost(a, 'a'), familyHost(b, a === b ? 'b' : 'a')] });
  });
  cells.push({ a: 'sym-dual', b: 'sym-dual', nodes: [familyHost('sym-dual', 'a'), familyHost('sym-dual', 'b')] });
  return cells;
}

/**
 * A dual-stack hub and two hosts per class, each behind its own home router: a restricted IPv4
 * NAT (symmetric for sym-dual) and, for every class but ipv4, an IPv6 prefix behind RFC 6092's
 * stateful firewall. IPv6-only hosts sit on such a router's LAN without an IPv4 address.
 */
export function familyTopology(name: string): TopologyInput {
  const routers: NonNullable<TopologyInput['routers']> = [];
  const hosts: TopologyInput['hosts'] = [{ name: 'hub', network: 'internet', address: '203.0.113.2', address6: '2001:db8::2' }];
  let i = 0;
  for (const c of FAMILY_CLASSES) {
    for (const which of ['a', 'b'] as const) {
      i++;
      const router = `${FAMILY_SHORT[c]}-${which}`;
      const prefix = `2001:db8:${10 + i}::`;
      const ipv6 = c === 'ipv4' ? {} : { ipv6: { prefix: `${prefix}/48`, firewall: 'stateful' as const } };
      routers.push({ name: router, profile: c === 'sym-dual' ? 'symmetric' : 'restricted', wan: `203.0.113.${10 + i}`, lan: `192.168.${10 + i}.0/24`, ...ipv6 });
      hosts.push({
        name: familyHost(c, which),
        network: router,
        ...(c === 'ipv6' ? {} : { address: `192.168.${10 + i}.2` }),
        ...(c === 'ipv4' ? {} : { address6: `${prefix}2` }),
      });
    }
  }
  return { name, internet: { subnet: '203.0.113.0/24', subnet6: '2001:db8::/64' }, routers, hosts };
}

// ---- running ------------------------------------------------------------------------------------

/** Builds the matrix lab, runs every cell at once, and tears the lab down. */
export async function runMatrix(opts: { name?: string; onProgress?: Progress } = {}): Promise<MatrixCell[]> {
  const lab = await Lab.up(parseTopology(matrixTopology(opts.name ?? 'natmatrix')), { onProgress: opts.onProgress });
  try {
    return await matrixIn(lab, opts.onProgress);
  } finally {
    await lab.down();
  }
}

/** Builds the family lab, runs every cell at once, and tears the lab down. */
export async function runFamilyMatrix(opts: { name?: string; onProgress?: Progress } = {}): Promise<FamilyCell[]> {
  const lab = await Lab.up(parseTopology(familyTopology(opts.name ?? 'fammatrix')), { onProgress: opts.onProgress });
  try {
    return await familiesIn(lab, opts.onProgress);
  } finally {
    await lab.down();
  }
}

/** `only`: the cells to run (say, those with udp-blocked); the lab has every host regardless. */
export async function matrixIn(lab: Lab, onProgress?: Progress, only: (c: { a: MatrixProfile; b: MatrixProfile }) => boolean = () => true): Promise<MatrixCell[]> {
  const cells = matrixCells().filter(only);
  const outcomes = await runCells(lab, cells, hostFor('udp-blocked', 'a'), onProgress);
  return cells.map((c, i) => ({ a: c.a, b: c.b, ...outcomes[i] }));
}

export async function familiesIn(lab: Lab, onProgress?: Progress): Promise<FamilyCell[]> {
  const cells = familyCells();
  const outcomes = await runCells(lab, cells, undefined, onProgress);
  return cells.map((c, i) => ({ a: c.a, b: c.b, ...outcomes[i] }));
}

/** Every cell at once: one agent per host, each pair its own group; then what each pair did. */
async function runCells(lab: Lab, cells: { nodes: [string, string] }[], blocked: string | undefined, onProgress?: Progress): Promise<CellOutcome[]> {
  const s = new Scenario(lab);
  await s.initHub();
  const groups = new Map<string, string[]>();
  for (const c of cells) for (const n of c.nodes) groups.set(n, [...(groups.get(n) ?? []), `${c.nodes[0]}-${c.nodes[1]}`]);
  const names = [...groups.keys()];
  for (const n of names) await s.addNode(n, 'agent', n, ['--groups', groups.get(n)!.join(',')]);
  let done = 0;
  for (const n of names) {
    // An agent behind udp-blocked reaches the hub over its TLS stream (issue 12), after its UDP deadline.
    await s.startAgent(n);
    onProgress?.(`agent ${n} up`, ++done, names.length + cells.length);
  }
  const live = cells;
  const pairRows = async () => (await s.hubStatus()).pairs ?? [];
  const rowOf = (rows: Awaited<ReturnType<typeof pairRows>>, [x, y]: [string, string]) => rows.find((r) => (r.a === x && r.b === y) || (r.a === y && r.b === x));
  await s
    .waitFor(async () => {
      const rows = await pairRows();
      return live.every((c) => rowOf(rows, c.nodes)?.confirmed === true);
    }, 45_000, 'every cell to settle on a working path')
    .catch(() => undefined);
  const rows = await pairRows();
  const out: CellOutcome[] = [];
  for (const c of cells) {
    const row = rowOf(rows, c.nodes);
    const [x, y] = c.nodes.map((n) => s.nodes.get(n)!);
    let path: CellPath = row?.confirmed ? (row.mode === 'relay' ? (row.streamSides?.length ? 'tcp-relay' : 'relay') : row.mode === 'direct' ? 'direct' : 'none') : 'none';
    if (blocked !== undefined && c.nodes.includes(blocked) && (await s.hubStatus()).nodes.find((n) => n.name === blocked)?.handshakeAgeMs === null) path = 'not connected';
    const endpoint = (await s.endpointOn(x.ifname, await s.publicKey(y.name)).catch(() => undefined)) ?? null;
    const endpointB = (await s.endpointOn(y.ifname, await s.publicKey(x.name)).catch(() => undefined)) ?? null;
    let replies = 0;
    const sent = 10;
    const carries = path === 'direct' || path === 'relay' || path === 'tcp-relay';
    if (carries) {
      await msUntilPingReply(lab.ns(x.host), y.address, 5000).catch(() => undefined);
      const r = await lab.exec(x.host, 'ping', ['-n', '-q', '-c', String(sent), '-i', '0.05', '-W', '1', y.address], { allowFail: true });
      replies = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
    }
    const diagnosis = carries && replies < sent - 1 ? await diagnoseCell(s, lab, x, y).catch((err: Error) => `no diagnosis: ${err.message}`) : undefined;
    out.push({
      nodes: c.nodes,
      path,
      endpoint,
      endpointB,
      family: row?.family ?? null,
      candidate: row?.candidate ?? null,
      firstPathMs: row?.firstPathMs ?? null,
      replies,
      sent: carries ? sent : 0,
      reason: row?.reason ?? null,
      ...(diagnosis ? { diagnosis } : {}),
    });
    onProgress?.(`${c.nodes.join(' x ')}: ${path}`, ++done, names.length + cells.length);
  }
  return out;
}

// ---- rendering ----------------------------------------------------------------------------------

const cellText = (c: CellOutcome | undefined, withFamily: boolean): string => {
  if (!c) return '';
  if (c.path === 'not connected') return 'not connected';
  const over = withFamily && c.path === 'direct' && c.family !== null ? ` IPv${c.family}` : '';
  const ok = c.replies === c.sent ? '' : ` (${c.replies}/${c.sent} replies)`;
  return `${c.path}${over}${c.firstPathMs !== null ? ` ${c.firstPathMs} ms` : ''}${ok}`;
};

/** Upper triangle only, as in the report: a pair appears once. */
function triangle(heads: string[], rowHeads: string[], text: (r: number, col: number) => string): string {
  const rows = rowHeads.map((h, r) => [h, ...heads.map((_, col) => text(r, col))]);
  const widths = ['', ...heads].map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  return [line(['', ...heads]), ...rows.map(line)].join('\n');
}

/** The matrix as the eduVPN report's Table 1 lays it out: profiles down and across, one cell per pair. */
export function renderMatrix(cells: MatrixCell[]): string {
  const cols: MatrixProfile[] = [...MATRIX_PROFILES, 'udp-blocked'];
  return triangle(cols, [...MATRIX_PROFILES], (r, col) => cellText(cells.find((c) => c.a === MATRIX_PROFILES[r] && c.b === cols[col]), false));
}

/** The family matrix as the report lays its table out, then the symmetric-NAT pair on a line of its own. */
export function renderFamilyMatrix(cells: FamilyCell[]): string {
  const classes = ['ipv4', 'dual', 'ipv6'] as const;
  const table = triangle(
    classes.map((c) => FAMILY_LABEL[c]),
    classes.map((c) => FAMILY_LABEL[c]),
    (r, col) => cellText(cells.find((c) => c.a === classes[r] && c.b === classes[col]), true),
  );
  const extra = cells
    .filter((c) => !classes.includes(c.a as (typeof classes)[number]) || !classes.includes(c.b as (typeof classes)[number]))
    .map((c) => `${FAMILY_LABEL[c.a]} x ${FAMILY_LABEL[c.b]}: ${cellText(c, true)}`);
  return [table, ...extra].join('\n');
}
