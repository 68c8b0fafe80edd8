import { Lab, type Progress } from './lab.js';
import { Scenario } from './scenario.js';
import { parseTopology, type TopologyInput } from './topology.js';
import { msUntilPingReply } from './wireguard.js';

/**
 * The NAT matrix: two agents for every pair of NAT profiles (and udp-blocked against each), one
 * hub with its relay, real WireGuard. Each cell is its own group, so the hub coordinates exactly
 * one pair per cell while all of them run at once. What each cell did is read from the hub's pair
 * status and checked on the agents' devices and with pings through the tunnel.
 */

export const MATRIX_PROFILES = ['open', 'firewall', 'cone', 'restricted', 'symmetric'] as const;
export type MatrixProfile = (typeof MATRIX_PROFILES)[number] | 'udp-blocked';
export type CellPath = 'direct' | 'relay' | 'not connected' | 'none';

export interface MatrixCell {
  a: MatrixProfile;
  b: MatrixProfile;
  nodes: [string, string];
  path: CellPath;
  /** How the path was verified on the first agent's device: the endpoint it sends to. */
  endpoint: string | null;
  /** From both agents connected to the path carrying traffic (hub's measurement). */
  firstPathMs: number | null;
  /** Ping replies out of those sent through the tunnel, after the path was decided. */
  replies: number;
  sent: number;
  reason: string | null;
}

const SHORT: Record<MatrixProfile, string> = { open: 'o', firewall: 'f', cone: 'c', restricted: 'r', symmetric: 's', 'udp-blocked': 'u' };
const PUBLIC_LANS: Partial<Record<MatrixProfile, number>> = { open: 0, firewall: 32 };

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
  const hosts: TopologyInput['hosts'] = [{ name: 'hub', network: 'internet', address: '203.0.113.2' }];
  let i = 0;
  for (const p of [...MATRIX_PROFILES, 'udp-blocked'] as const) {
    for (const which of p === 'udp-blocked' ? (['a'] as const) : (['a', 'b'] as const)) {
      i++;
      const router = `${p.slice(0, 10)}-${which}`;
      const pub = PUBLIC_LANS[p];
      // Open and firewall routers route public addresses (the internet core routes their LAN to them).
      const lan = pub !== undefined ? `198.51.100.${pub + (which === 'b' ? 16 : 0)}/28` : `192.168.${10 + i}.0/24`;
      const address = pub !== undefined ? `198.51.100.${pub + (which === 'b' ? 16 : 0) + 2}` : `192.168.${10 + i}.2`;
      routers.push({ name: router, profile: p, wan: `203.0.113.${10 + i}`, lan });
      hosts.push({ name: hostFor(p, which), network: router, address });
    }
  }
  return { name, routers, hosts };
}

interface PairRow {
  a: string;
  b: string;
  mode: string;
  confirmed: boolean;
  firstPathMs: number | null;
  reason: string | null;
}

/** Builds the matrix lab, runs every cell at once, and tears the lab down. */
export async function runMatrix(opts: { name?: string; onProgress?: Progress } = {}): Promise<MatrixCell[]> {
  const lab = await Lab.up(parseTopology(matrixTopology(opts.name ?? 'natmatrix')), { onProgress: opts.onProgress });
  try {
    return await matrixIn(lab, opts.onProgress);
  } finally {
    await lab.down();
  }
}

export async function matrixIn(lab: Lab, onProgress?: Progress): Promise<MatrixCell[]> {
  const cells = matrixCells();
  const s = new Scenario(lab);
  await s.initHub();
  const groups = new Map<string, string[]>();
  for (const c of cells) for (const n of c.nodes) groups.set(n, [...(groups.get(n) ?? []), `${c.nodes[0]}-${c.nodes[1]}`]);
  const names = [...groups.keys()];
  for (const n of names) await s.addNode(n, 'agent', n, ['--groups', groups.get(n)!.join(',')]);
  const blocked = hostFor('udp-blocked', 'a');
  let done = 0;
  for (const n of names) {
    // An agent behind udp-blocked never reaches the hub (WireGuard is UDP): do not wait for it.
    await s.startAgent(n, { wait: n !== blocked });
    onProgress?.(`agent ${n} up`, ++done, names.length + cells.length);
  }
  const live = cells.filter((c) => c.b !== 'udp-blocked');
  const pairRows = async (): Promise<PairRow[]> => (await s.hubStatus()).pairs ?? [];
  const rowOf = (rows: PairRow[], [x, y]: [string, string]) => rows.find((r) => (r.a === x && r.b === y) || (r.a === y && r.b === x));
  await s
    .waitFor(async () => {
      const rows = await pairRows();
      return live.every((c) => rowOf(rows, c.nodes)?.confirmed === true);
    }, 45_000, 'every cell to settle on a working path')
    .catch(() => undefined);
  const rows = await pairRows();
  const out: MatrixCell[] = [];
  for (const c of cells) {
    const row = rowOf(rows, c.nodes);
    const [x, y] = c.nodes.map((n) => s.nodes.get(n)!);
    let path: CellPath = row?.confirmed ? (row.mode === 'relay' ? 'relay' : row.mode === 'direct' ? 'direct' : 'none') : 'none';
    if (c.b === 'udp-blocked' && (await s.hubStatus()).nodes.find((n) => n.name === blocked)?.handshakeAgeMs === null) path = 'not connected';
    const endpoint = (await s.endpointOn(x.ifname, await s.publicKey(y.name)).catch(() => undefined)) ?? null;
    let replies = 0;
    const sent = 10;
    if (path === 'direct' || path === 'relay') {
      await msUntilPingReply(lab.ns(x.host), y.address, 5000).catch(() => undefined);
      const r = await lab.exec(x.host, 'ping', ['-n', '-q', '-c', String(sent), '-i', '0.05', '-W', '1', y.address], { allowFail: true });
      replies = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
    }
    out.push({ a: c.a, b: c.b, nodes: c.nodes, path, endpoint, firstPathMs: row?.firstPathMs ?? null, replies, sent: path === 'direct' || path === 'relay' ? sent : 0, reason: row?.reason ?? null });
    onProgress?.(`${c.a} x ${c.b}: ${path}`, ++done, names.length + cells.length);
  }
  return out;
}

/** The matrix as the eduVPN report's Table 1 lays it out: profiles down and across, one cell per pair. */
export function renderMatrix(cells: MatrixCell[]): string {
  const cols: MatrixProfile[] = [...MATRIX_PROFILES, 'udp-blocked'];
  const text = (c: MatrixCell | undefined) => {
    if (!c) return '';
    if (c.path === 'not connected') return 'not connected';
    const ok = c.replies === c.sent ? '' : ` (${c.replies}/${c.sent} replies)`;
    return `${c.path}${c.firstPathMs !== null ? ` ${c.firstPathMs} ms` : ''}${ok}`;
  };
  // Upper triangle only, as in the report: a pair appears once.
  const rows = MATRIX_PROFILES.map((a) => [a, ...cols.map((b) => text(cells.find((c) => c.a === a && c.b === b)))]);
  const widths = ['', ...cols].map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  return [line(['', ...cols]), ...rows.map(line)].join('\n');
}
