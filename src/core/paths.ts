/**
 * The one vocabulary for how an agent pair's traffic flows, used by the hub's coordinator, the
 * protocol and the agent:
 * - direct: over one candidate (candidates/), peer to peer;
 * - relay: both sides send to a relay allocation that forwards what it cannot decrypt;
 * - hub: no peer entry; the peer's addresses are routed through the hub peer (proxied mode).
 */
export const VIAS = ['direct', 'relay', 'hub'] as const;
export type Via = (typeof VIAS)[number];

/**
 * What an agent shows for one peer (`status`, and its reports to the hub): the path, or where it
 * stands on the way to one. Plain clients use it too: they are direct, trying, impossible, stale
 * or proxied.
 */
export const PEER_STATES = ['direct', 'trying', 'impossible', 'relaying', 'relayed', 'proxied', 'stale', 'unknown'] as const;
export type PeerStateName = (typeof PEER_STATES)[number];
