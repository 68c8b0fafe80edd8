import type { NodeStatusJson, StoreHealthJson } from '../core/status.js';
import type { WriterHealth } from './endpoint-writer.js';
import type { PeerState } from '../core/wireguard/uapi.js';
import type { NatStatus } from './nat-knowledge.js';
import type { AgentSession } from './sessions.js';
import { nodeAddress6 } from './address-plan.js';
import type { HubSettings, NodeRecord } from './store/model.js';

type Path = NonNullable<NodeStatusJson['paths']>[number];

/**
 * What `wgp2p status` shows of each node: how the hub's device sees it, what the hub knows of its
 * NAT, and the paths agents report to it. One pass over the nodes and one over the reports: at
 * 10,000 nodes and 1,000 agents, not nodes × agents.
 */
export function nodeStatus(
  hub: HubSettings,
  nodes: Iterable<NodeRecord>,
  seen: (publicKey: string) => PeerState | undefined,
  sessions: Iterable<AgentSession>,
  nat: (publicKey: string) => NatStatus | undefined,
  /** What the agent said of its way to the hub (its hello), if anything. */
  reported: (publicKey: string) => { transport: 'udp' | 'tcp/tls'; reason: string } | undefined = () => undefined,
): NodeStatusJson[] {
  const now = Date.now();
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
  const out: NodeStatusJson[] = [];
  for (const n of nodes) {
    const p = seen(n.publicKey);
    const row: NodeStatusJson = {
      name: n.name,
      kind: n.kind,
      address: n.address.toString(),
      address6: nodeAddress6(hub, n.hostNumber).toString(),
      endpoint: p?.endpoint?.toString() ?? null,
      handshakeAgeMs: p && p.lastHandshakeMs > 0 ? now - p.lastHandshakeMs : null,
      rxBytes: p?.rxBytes ?? 0,
      txBytes: p?.txBytes ?? 0,
    };
    if (n.kind === 'agent') {
      row.connected = connected.has(n.publicKey);
      row.nat = nat(n.publicKey);
      // The hub's own evidence decides the transport: a node on the stream is seen on loopback.
      const streamed = p?.endpoint?.address.scope() === 'loopback';
      const r = reported(n.publicKey);
      row.transport = { transport: streamed ? 'tcp/tls' : 'udp', reason: r && (r.transport === 'tcp/tls') === streamed ? r.reason : streamed ? 'seen on the hub\'s stream side' : null };
    }
    row.paths = paths.get(n.publicKey) ?? [];
    out.push(row);
  }
  return out;
}

/** The store's health as `status` shows it: what the endpoint writer knows of its last writes. */
export function storeStatus(h: WriterHealth, now: number): StoreHealthJson {
  return { state: h.degraded ? 'degraded' : 'ok', pendingWrites: h.pendingWrites, failures: h.failures, lastError: h.lastError, failingForMs: h.failingSince === null ? null : now - h.failingSince };
}
