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
  return failures % 2 === 0 ? 'a' : 'b';
}
