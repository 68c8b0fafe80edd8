import { punchBlocked } from '../nat.js';
import { sameFamily, type CandidateKind } from './kind.js';

/**
 * Each side sends to the public IPv4 endpoint the hub's own WireGuard device sees the other at,
 * both at once, so both NATs open for each other. Gathered from the hub's observation alone (no
 * STUN). Blocked where the NATs' behaviour rules it out (nat.ts). Window 2 s: a lab handshake
 * takes ~20 ms; 2 s leaves room for real round-trip times and is when a failure is known.
 */
export const publicIpv4: CandidateKind = {
  id: 'public4',
  priority: 30,
  windowMs: 2000,
  label: 'the direct IPv4 path',
  name: 'IPv4',
  crossesNat: true,
  gather(x, y) {
    if (x.seen?.family !== 4 || y.seen?.family !== 4) return undefined;
    return { forX: y.seen, forY: x.seen };
  },
  blocked: (x, y) => punchBlocked(x.nat, y.nat, x.name, y.name),
  proves: sameFamily,
};
