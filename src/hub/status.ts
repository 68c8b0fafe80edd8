import type { NodeRecord } from '../core/store.js';
import type { DeviceState } from '../core/wireguard/uapi.js';
import type { PeerReport } from '../core/protocol.js';
import type { NatFacts } from './nat-facts.js';

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

export function nodeStatus(nodes: NodeRecord[], device: DeviceState | undefined, sessions: Iterable<{ node: NodeRecord; reports: Map<string, PeerReport> }>, facts: Map<string, NatFacts>): HubStatusNode[] {
  const now = Date.now();
  const seen = new Map((device?.peers ?? []).map((p) => [p.publicKey, p]));
  const live = [...sessions];
  return nodes.map((n) => {
    const p = seen.get(n.publicKey);
    const row: HubStatusNode = {
      name: n.name,
      kind: n.kind,
      address: n.address,
      endpoint: p?.endpoint ?? null,
      handshakeAgeMs: p && p.lastHandshakeMs > 0 ? now - p.lastHandshakeMs : null,
      rxBytes: p?.rxBytes ?? 0,
      txBytes: p?.txBytes ?? 0,
    };
    if (n.kind === 'agent') {
      row.connected = live.some((s) => s.node.publicKey === n.publicKey);
      const f = facts.get(n.publicKey);
      if (f) row.nat = { mapping: f.mapping, mappingWhy: f.mappingWhy, filtering: f.filtering, filteringWhy: f.filteringWhy, lan: f.lan };
    }
    row.paths = live
      .map((s) => ({ s, r: s.reports.get(n.publicKey) }))
      .filter((x) => x.r)
      .map(({ s, r }) => ({ agent: s.node.name, path: r!.path, directAfterMs: r!.directAfterMs, reason: r!.reason, handshakeAgeMs: r!.handshakeAgeMs }));
    return row;
  });
}
