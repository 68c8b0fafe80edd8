/**
 * The vocabulary of NAT behaviour (RFC 4787) and the one rule that follows from it for hole
 * punching. What is known about a particular node's NAT is learned by the hub
 * (hub/nat-knowledge.ts); this file only says what the knowledge means.
 *
 * - mapping: does the NAT give the node the same public port toward every destination?
 *   "dependent" (symmetric) NATs give a new port per destination, so a peer can never be told
 *   the port to send to;
 * - filtering: does the NAT let in packets from a host the node has not sent to (from that
 *   exact port)? Only "independent" filtering (full cone, no firewall) accepts a symmetric
 *   peer's packets, which come from a port nobody could predict.
 */

export type Knowledge = 'independent' | 'dependent' | 'unknown';

/**
 * Whether the router accepts unsolicited packets on its WAN side ("leaky", the lab's
 * `restricted-leaky`): the first punch to reach it before the node's own packet left takes the
 * node's port toward that peer, and the node's packets then come from a port the peer's NAT
 * filters. Such a node must send first (hub/pairs/initiator.ts).
 */
export type Leaky = 'yes' | 'no' | 'unknown';

export interface NatBehaviour {
  mapping: Knowledge;
  filtering: Knowledge;
  /** In words, for reasons and status ("NAT changed the port (51820 -> 40123), so it maps per destination"). */
  mappingWhy: string;
  filteringWhy: string;
  leaky: Leaky;
  leakyWhy: string;
}

/** Why a hole punch between x and y through their IPv4 NATs cannot work, or null if it may. */
export function punchBlocked(x: NatBehaviour, y: NatBehaviour, nameX: string, nameY: string): string | null {
  if (x.mapping === 'dependent' && y.mapping === 'dependent') return `both NATs map per destination (${nameX}: ${x.mappingWhy}; ${nameY}: ${y.mappingWhy})`;
  if (x.mapping === 'dependent' && y.filtering === 'dependent') return `${nameX} maps per destination and ${nameY} filters (${y.filteringWhy})`;
  if (y.mapping === 'dependent' && x.filtering === 'dependent') return `${nameY} maps per destination and ${nameX} filters (${x.filteringWhy})`;
  return null;
}
