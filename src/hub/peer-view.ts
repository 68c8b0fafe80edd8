import type { PeerInfo } from '../core/protocol.js';
import type { NodeRecord } from '../core/store.js';
import type { PeerState } from '../core/wireguard/uapi.js';

/** What an agent is told about one peer: its P2P address, and where and how recently the hub saw it. */
export function peerInfo(client: NodeRecord, seen: PeerState | undefined, nowMs: number): PeerInfo {
  return {
    name: client.name,
    kind: client.kind === 'agent' ? 'agent' : 'client',
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
  return nodes.filter((n) => n.kind !== 'relay' && n.publicKey !== agent.publicKey && !(n.enrolKey && !n.enrolUsed) && n.groups.some((g) => agent.groups.includes(g)));
}

/** The agent pairs the hub coordinates: two agents that share a group. */
export function agentPairs(nodes: NodeRecord[]): [string, string][] {
  const agents = nodes.filter((n) => n.kind === 'agent' && !(n.enrolKey && !n.enrolUsed));
  const out: [string, string][] = [];
  for (let i = 0; i < agents.length; i++) {
    for (let j = i + 1; j < agents.length; j++) {
      if (agents[i].groups.some((g) => agents[j].groups.includes(g))) out.push([agents[i].publicKey, agents[j].publicKey]);
    }
  }
  return out;
}
