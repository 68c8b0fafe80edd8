import type { HubView } from '../core/doctor/report.js';
import type { HubStatusJson } from '../core/status.js';

/**
 * What `GET /v1/doctor` tells an agent about itself: how the hub sees it, what the hub knows of
 * its NAT, its pairs, and of the peers in those pairs only their NAT facts (no endpoints, no
 * names of the agents that serve them: a node learns nothing of nodes it cannot reach).
 */
export function doctorView(status: HubStatusJson, name: string, relaySeen: string | null): HubView | undefined {
  const node = status.nodes.find((n) => n.name === name);
  if (!node) return undefined;
  const pairs = status.pairs.filter((p) => p.a === name || p.b === name);
  const names = new Set(pairs.map((p) => (p.a === name ? p.b : p.a)));
  const peers = status.nodes.filter((n) => names.has(n.name)).map(({ endpoint: _e, paths: _p, ...rest }) => rest);
  return { node, peers, pairs, relaySeen };
}
