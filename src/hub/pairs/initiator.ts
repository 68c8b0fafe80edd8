import type { NodeView } from '../../core/candidates/index.js';
import type { Side } from './attempt.js';

/**
 * Which side of a pair starts the handshake in an attempt; the other opens its NAT and answers
 * (agent/attempt.ts says why both sending at once stalls for 5 s). Either works between NATs that
 * keep one mapping per socket. A NAT that maps per destination gives its node a port the peer
 * cannot know, and only that node's own initiation shows the peer where it is (a peer that does
 * not filter answers it there), so that node initiates. Otherwise the sides take turns from one
 * failed attempt to the next, so a router that spoils one order (one that accepts unsolicited
 * packets on its WAN gives its host a new port once the peer's packet got there first) costs one
 * attempt, not every one.
 */
export function initiatorOf(a: NodeView, b: NodeView, failures: number): Side {
  const aMaps = a.nat.mapping === 'dependent';
  const bMaps = b.nat.mapping === 'dependent';
  if (aMaps !== bMaps) return aMaps ? 'a' : 'b';
  // A router known to take unsolicited WAN input must see its own node's packet first: that
  // node answers, and the responder opens its NAT before the initiator sends (agent/attempt.ts).
  // The other way round, the responder's opening packet lands on the leaky router and takes the
  // port the initiator is about to use. Measured in the lab (bench/leaky.ts): with the order left
  // to chance, leaky x home and home x leaky went direct in 1 of 4 runs within 15 s; with this
  // rule, 10 of 10 on the first attempt. Two leaky routers need the agents' TTL-limited opening
  // (agent/punch-ttl.ts); here they take turns.
  const aLeaks = a.nat.leaky === 'yes';
  const bLeaks = b.nat.leaky === 'yes';
  if (aLeaks !== bLeaks && !aMaps) return aLeaks ? 'b' : 'a';
  return failures % 2 === 0 ? 'a' : 'b';
}

/**
 * Whether a side must open its NAT before it says ready, in every attempt: its router is known to
 * take unsolicited WAN input. Roles already make the responder open first, but retries from the
 * relay and attempts over a live session have no roles (both punch at once), and there the peer's
 * punch could still arrive first.
 */
export function opensFirst(self: NodeView): boolean {
  return self.nat.leaky === 'yes';
}
