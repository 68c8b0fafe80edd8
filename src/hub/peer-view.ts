import { nodeHostRoutes } from './configs.js';
import type { PeerInfo } from '../core/protocol.js';
import type { PeerState } from '../core/wireguard/uapi.js';
import { isPending, type HubSettings, type NodeRecord } from './store/model.js';

/**
 * What an agent is told about one peer: its P2P address, and how recently the hub saw it; for a
 * plain client also where (the agent points at it). Another agent's endpoints reach an agent
 * only as candidates of the pair coordinator, never here.
 */
export function peerInfo(hub: HubSettings, peer: NodeRecord, seen: PeerState | undefined, nowMs: number): PeerInfo {
  return {
    name: peer.name,
    kind: peer.kind === 'agent' ? 'agent' : 'client',
    publicKey: peer.publicKey,
    allowedIps: [...nodeHostRoutes(hub, peer), ...(peer.kind === 'agent' ? peer.routes.map(String) : [])],
    endpoint: peer.kind === 'agent' ? null : (seen?.endpoint ?? null),
    handshakeAgeMs: seen && seen.lastHandshakeMs > 0 ? Math.max(0, nowMs - seen.lastHandshakeMs) : null,
    listenPort: peer.listenPort,
  };
}

/**
 * Whether an agent is told about `n`: the clients it serves and the other agents of the mesh, in
 * both cases only those sharing a group with it, and never a node that has not joined yet.
 */
export function canSee(viewer: NodeRecord, n: NodeRecord): boolean {
  return n.kind !== 'relay' && n.publicKey !== viewer.publicKey && !isPending(n) && n.groups.some((g) => viewer.groups.includes(g));
}
