import type { PeerInfo } from '../core/protocol.js';
import type { NodeRecord } from '../core/store.js';
import type { PeerState } from '../core/wireguard/uapi.js';

/** What an agent is told about one client: its P2P address, and where and how recently the hub saw it. */
export function peerInfo(client: NodeRecord, seen: PeerState | undefined, nowMs: number): PeerInfo {
  return {
    name: client.name,
    kind: client.kind,
    publicKey: client.publicKey,
    allowedIps: [`${client.address}/32`, ...(client.kind === 'agent' ? client.routes : [])],
    endpoint: seen?.endpoint ?? null,
    handshakeAgeMs: seen && seen.lastHandshakeMs > 0 ? Math.max(0, nowMs - seen.lastHandshakeMs) : null,
    listenPort: client.listenPort,
  };
}

/**
 * The peers an agent is told about: the clients it serves and the other agents of the mesh, in
 * both cases only those sharing a group with it, and never a node that has not joined yet.
 */
export function peersVisibleTo(agent: NodeRecord, nodes: NodeRecord[]): NodeRecord[] {
  return nodes.filter((n) => n.publicKey !== agent.publicKey && !(n.enrolKey && !n.enrolUsed) && n.groups.some((g) => agent.groups.includes(g)));
}
