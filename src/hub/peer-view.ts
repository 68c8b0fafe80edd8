import type { PeerInfo } from '../core/protocol.js';
import type { NodeRecord } from '../core/store.js';
import type { PeerState } from '../core/wireguard/uapi.js';

/** What an agent is told about one client: its P2P address, and where and how recently the hub saw it. */
export function peerInfo(client: NodeRecord, seen: PeerState | undefined, nowMs: number): PeerInfo {
  return {
    name: client.name,
    publicKey: client.publicKey,
    allowedIps: [`${client.address}/32`],
    endpoint: seen?.endpoint ?? null,
    handshakeAgeMs: seen && seen.lastHandshakeMs > 0 ? Math.max(0, nowMs - seen.lastHandshakeMs) : null,
    listenPort: client.listenPort,
  };
}

/** The clients an agent may see. Every agent serves every client until groups exist (mesh issue). */
export function clientsVisibleTo(_agent: NodeRecord, nodes: NodeRecord[]): NodeRecord[] {
  return nodes.filter((n) => n.kind === 'client');
}
