import { Cidr } from '../core/net/cidr.js';
import { proxiedAddress, proxiedAddress6 } from './address-plan.js';
import { hubAllowedIps } from './configs.js';
import { isPending, type HubSettings, type NodeRecord } from './store/model.js';

/** How long after its expiry a join code's one-time key still reaches the hub, so a reuse gets a clear "already used". */
export const ENROL_GRACE_MS = 24 * 3600_000;

export interface HubPeer {
  publicKey: string;
  allowedIps: string[];
}

/**
 * The peers the hub's interface holds for one node: the node itself once it has joined, and a
 * join code's one-time key on the join tunnel's address while the hub still answers for it.
 */
export function desiredPeersOf(n: NodeRecord, hub: HubSettings, now: number): HubPeer[] {
  const peers: HubPeer[] = [];
  if (!isPending(n)) peers.push({ publicKey: n.publicKey, allowedIps: hubAllowedIps(hub, n) });
  const enrolAt = proxiedAddress(hub, n.hostNumber);
  // A used code's key is nobody's peer (issue 10, finding 6): peer-sync.ts retires it once the
  // enrolment's reply has gone out through it.
  if (isPending(n) && n.enrolKey && enrolAt && now < (n.enrolExpiresAt ?? 0) + ENROL_GRACE_MS) peers.push({ publicKey: n.enrolKey, allowedIps: [Cidr.host(enrolAt).toString(), Cidr.host(proxiedAddress6(hub, n.hostNumber)).toString()] });
  return peers;
}

/** The peers the hub's interface must have: every node, plus one-time join keys on their own addresses. */
export function desiredHubPeers(nodes: Iterable<NodeRecord>, hub: HubSettings, now: number): HubPeer[] {
  const peers: HubPeer[] = [];
  for (const n of nodes) peers.push(...desiredPeersOf(n, hub, now));
  return peers;
}
