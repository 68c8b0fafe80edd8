import type { IpAddress } from '../net/address.js';
import { Endpoint } from '../net/endpoint.js';
import type { Prefixed } from '../net/cidr.js';
import { sameFamily, type CandidateKind, type NodeView } from './kind.js';

/**
 * Two nodes behind the same public IPv4 address reach each other on their LAN addresses. That
 * works with hairpin off (most home routers) and is shorter with it on. A LAN address is only ever
 * given to a node behind the same public IP: it is private, and means nothing elsewhere.
 *
 * Gathered from the agents' reports of their interface addresses, restricted to RFC 1918 and
 * RFC 6598 space. Window 600 ms: a LAN answers within a millisecond or not at all, and a short
 * window keeps the next candidate (the router's public address) close.
 */

/**
 * What may be a LAN address: RFC 1918 and RFC 6598 IPv4, IPv6 link-local (fe80::/10) and
 * unique-local in its assigned half (fd00::/8; fc00::/8 has no allocation rule). Anything else a
 * peer offers as "its LAN" (loopback, multicast, a public or reserved address) would make the
 * other side send to a place that is not a LAN.
 */
export function isLanAddress(a: IpAddress): boolean {
  if (a.family === 4) return a.scope() === 'private' || a.scope() === 'shared';
  return a.scope() === 'link-local' || (a.scope() === 'unique-local' && a.value >> 120n === 0xfdn);
}

// IPv6 LAN addresses are accepted but not yet paired: link-local needs a zone, and a ULA proves no shared link.
const lanAddresses = (n: NodeView): Prefixed[] => n.interfaces.filter((p) => p.family === 4 && isLanAddress(p.address));

/** Prefer two addresses in one subnet; else the first of each. */
function bestPair(xs: Prefixed[], ys: Prefixed[]): [Prefixed, Prefixed] {
  for (const a of xs) for (const b of ys) if (a.subnet.contains(b.address)) return [a, b];
  return [xs[0], ys[0]];
}

export const lan: CandidateKind = {
  id: 'lan',
  priority: 20,
  windowMs: 600,
  label: 'the LAN',
  name: 'LAN',
  crossesNat: false,
  gather(x, y) {
    if (!x.seen || !y.seen || x.seen.family !== 4 || !x.seen.address.equals(y.seen.address)) return undefined;
    const lx = lanAddresses(x);
    const ly = lanAddresses(y);
    if (!lx.length || !ly.length || !x.listenPort || !y.listenPort) return undefined;
    const [ax, ay] = bestPair(lx, ly);
    return { forX: Endpoint.of(ay.address, y.listenPort), forY: Endpoint.of(ax.address, x.listenPort) };
  },
  // A LAN path crosses neither NAT.
  blocked: () => null,
  proves: sameFamily,
};
