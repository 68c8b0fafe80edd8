import type { Endpoint } from '../net/endpoint.js';
import { sameFamily, type CandidateKind, type NodeView } from './kind.js';

/**
 * A node whose router maps its WireGuard port (UPnP-IGD, NAT-PMP or PCP: agent/port-mapping/) is
 * reachable at the mapped endpoint from anywhere, like a full-cone host, whatever its NAT does
 * with its own outbound packets. So a pair goes direct when either side has a mapping: the other
 * side initiates toward the mapped endpoint from wherever its own NAT puts it (a symmetric NAT's
 * fresh port included), the router forwards that to the mapped node, and the mapped node's answer
 * leaves through the same conntrack entry, from the mapped endpoint, which the initiator's NAT
 * lets in as the reply it is. That covers symmetric x symmetric with one side mapped, and
 * symmetric x restricted with the symmetric side mapped.
 *
 * The mapped side therefore only answers, and does not open its NAT first: on a symmetric router
 * a packet of its own toward the peer makes a conntrack entry whose reply tuple (the peer's
 * address and port -> our port) is the one the peer's packet through the mapping needs, and the
 * router then drops the peer's packet as a clash. When both sides are mapped, x initiates.
 *
 * What a router says is never trusted as such: the mapping counts only when its external address
 * is the address the hub itself sees the node at (a mapping on the inner router of a double NAT
 * reaches nothing from outside), and only the attempt proves it forwards. Ranked after the LAN
 * (two nodes behind one router need no mapping) and before the punched IPv4 path, which it beats
 * wherever a punch is fragile (symmetric NATs, routers that accept unsolicited WAN packets).
 * Window 2 s, as for IPv4.
 */

/** The node's mapping, if it is one the hub can use: IPv4, on the router the hub sees the node behind. */
export function usableMapping(n: NodeView): Endpoint | undefined {
  const m = n.mapped;
  if (!m || m.family !== 4 || n.seen?.family !== 4) return undefined;
  return m.address.equals(n.seen.address) ? m : undefined;
}

export const mapped: CandidateKind = {
  id: 'mapped',
  priority: 25,
  windowMs: 2000,
  label: 'the mapped port',
  name: 'mapped',
  // The mapped side is heard at its mapping, not at its NAT's own mapping toward the peer: that
  // would teach the hub a wrong port, and the outcome says nothing about either NAT's filtering.
  crossesNat: false,
  gather(x, y) {
    const mx = usableMapping(x);
    const my = usableMapping(y);
    if (!mx && !my) return undefined;
    if (x.seen?.family !== 4 || y.seen?.family !== 4) return undefined;
    return { forX: my ?? y.seen, forY: mx ?? x.seen };
  },
  blocked: () => null,
  proves: sameFamily,
  initiator(x, y) {
    if (usableMapping(y)) return 'x';
    return usableMapping(x) ? 'y' : null;
  },
  responderOpensNat: false,
  // The initiator sends to the other side's mapping: that is the one an attempt tests.
  reliesOnMappingOf(x, y) {
    if (usableMapping(y)) return 'y';
    return usableMapping(x) ? 'x' : null;
  },
};
