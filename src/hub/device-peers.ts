import { hubAllowedIps, p2pSubnet } from '../core/configs.js';
import type { HubRecord, NodeRecord } from '../core/store.js';
import { enrolAddress } from './directory.js';

/** How long after its expiry a join code's one-time key still reaches the hub, so a reuse gets a clear "already used". */
export const ENROL_GRACE_MS = 24 * 3600_000;

export function isPending(n: NodeRecord): boolean {
  return n.enrolKey !== null && !n.enrolUsed;
}

/** The peers the hub's interface must have: every node, plus one-time join keys on their own addresses. */
export function desiredHubPeers(nodes: NodeRecord[], hub: HubRecord, now: number): { publicKey: string; allowedIps: string[] }[] {
  const peers: { publicKey: string; allowedIps: string[] }[] = [];
  for (const n of nodes) {
    const enrol = n.enrolKey && now < (n.enrolExpiresAt ?? 0) + ENROL_GRACE_MS ? { publicKey: n.enrolKey, allowedIps: [`${enrolAddress(hub.proxiedSubnet, p2pSubnet(hub), n.address)}/32`] } : undefined;
    if (!isPending(n)) peers.push({ publicKey: n.publicKey, allowedIps: hubAllowedIps(n) });
    if (enrol) peers.push(enrol);
  }
  return peers;
}
