import type { Prefixed } from '../net/cidr.js';
import { isLanAddress } from './lan.js';

/**
 * Which of the interface addresses an agent reports the hub keeps: LAN addresses (lan.ts) for
 * LAN candidates, and public ones, which make the IPv6 candidate (public-ipv6.ts) and show that
 * an IPv4 node has no NAT. Everything else (loopback, multicast, 169.254/16, reserved space) can
 * be no candidate of any kind, and the hub must not hand it to a peer as one.
 */
export function keptReported(interfaces: readonly Prefixed[]): { kept: Prefixed[]; dropped: Prefixed[] } {
  const kept: Prefixed[] = [];
  const dropped: Prefixed[] = [];
  for (const p of interfaces) (isLanAddress(p.address) || p.address.isPublic() ? kept : dropped).push(p);
  return { kept, dropped };
}
