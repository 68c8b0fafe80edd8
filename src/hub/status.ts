import type { PeerReport } from '../core/protocol.js';
import type { DeviceState } from '../core/wireguard/uapi.js';
import type { NatFacts } from './nat-facts.js';
import type { NodeRecord } from './store/model.js';

/** What `wgp2p status` shows of each node: how the hub's device sees it, and the paths agents report to it. */
export interface HubStatusNode {
  name: string;
  kind: 'agent' | 'client' | 'relay';
  address: string;
  endpoint: string | null;
  handshakeAgeMs: number | null;
  rxBytes: number;
  txBytes: number;
  /** Agents: whether its control connection is up. Clients: the path to each agent, as that agent reports it. */
  connected?: boolean;
  paths?: { agent: string; path: string; directAfterMs: number | null; reason: string | null; handshakeAgeMs: number | null }[];
  nat?: { mapping: string; mappingWhy: string; filtering: string; filteringWhy: string; lan: string[] };
}

type Path = NonNullable<HubStatusNode['paths']>[number];

/** One pass over the nodes and one over the reports: at 10,000 nodes and 1,000 agents, not nodes × agents. */
export function nodeStatus(nodes: Iterable<NodeRecord>, device: DeviceState | undefined, sessions: Iterable<{ node: NodeRecord; reports: Map<string, PeerReport> }>, facts: Map<string, NatFacts>): HubStatusNode[] {
  const now = Date.now();
  const seen = new Map((device?.peers ?? []).map((p) => [p.publicKey, p]));
  const connected = new Set<string>();
  const paths = new Map<string, Path[]>();
  for (const s of sessions) {
    connected.add(s.node.publicKey);
    for (const [key, r] of s.reports) {
      let list = paths.get(key);
      if (!list) paths.set(key, (list = []));
      list.push({ agent: s.node.name, path: r.path, directAfterMs: r.directAfterMs, reason: r.reason, handshakeAgeMs: r.handshakeAgeMs });
    }
  }
  const out: HubStatusNode[] = [];
  for (const n of nodes) {
    const p = seen.get(n.publicKey);
    const row: HubStatusNode = {
      name: n.name,
      kind: n.kind,
      address: n.address.toString(),
      endpoint: p?.endpoint ?? null,
      handshakeAgeMs: p && p.lastHandshakeMs > 0 ? now - p.lastHandshakeMs : null,
      rxBytes: p?.rxBytes ?? 0,
      txBytes: p?.txBytes ?? 0,
    };
    if (n.kind === 'agent') {
      row.connected = connected.has(n.publicKey);
      const f = facts.get(n.publicKey);
      if (f) row.nat = { mapping: f.mapping, mappingWhy: f.mappingWhy, filtering: f.filtering, filteringWhy: f.filteringWhy, lan: f.lan };
    }
    row.paths = paths.get(n.publicKey) ?? [];
    out.push(row);
  }
  return out;
}
