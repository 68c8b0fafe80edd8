import { Endpoint } from '../net/endpoint.js';
import type { IpAddress } from '../net/address.js';
import { sameFamily, type CandidateKind, type NodeView } from './kind.js';

/**
 * Each side sends to the other's global IPv6 address at its WireGuard listen port, both at once.
 * IPv6 has no NAT, only stateful firewalls that let replies in (RFC 6092): the simultaneous send
 * opens both, and there is no port to predict, so nothing the hub knows of IPv4 NATs applies.
 * Gathered from the agents' reports of their interface addresses (global scope only), and from
 * the hub's own sighting when a node reaches the hub over IPv6. Proven by the attempt, never
 * trusted: an address on an interface says nothing about the firewall in front of it.
 */

function globalAddress(n: NodeView): IpAddress | undefined {
  if (n.seen?.family === 6 && n.seen.address.isPublic()) return n.seen.address;
  return n.interfaces.find((p) => p.family === 6 && p.address.isPublic())?.address;
}

/** Where others reach `n` over IPv6 (a peer, or a plain client on an IPv6 network), if anywhere. */
export function ipv6Endpoint(n: NodeView): Endpoint | undefined {
  const a = globalAddress(n);
  return a && n.listenPort ? Endpoint.of(a, n.listenPort) : undefined;
}

export const publicIpv6: CandidateKind = {
  id: 'public6',
  priority: 10,
  windowMs: 2000,
  label: 'the direct IPv6 path',
  name: 'IPv6',
  crossesNat: false,
  gather(x, y) {
    const ex = ipv6Endpoint(x);
    const ey = ipv6Endpoint(y);
    return ex && ey ? { forX: ey, forY: ex } : undefined;
  },
  blocked: () => null,
  proves: sameFamily,
};
