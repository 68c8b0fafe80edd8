import { punchBlocked } from '../nat.js';
import { sameFamily, type CandidateKind } from './kind.js';
import { usableMapping } from './mapped.js';

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
    // Where a side's router maps its port, the mapped candidate covers every pair this one could,
    // and a punch of the mapped side's own would break it: its packet toward the peer leaves a
    // conntrack entry on its router whose reply tuple is the one the peer's packets through the
    // mapping need, and the router drops those as a clash for as long as the punches refresh it
    // (a failed attempt retried every 8 s kept a lab pair relayed for good). A mapping the
    // attempt finds not forwarding stops being usable (nat-knowledge.ts), and the punch returns.
    if (usableMapping(x) || usableMapping(y)) return undefined;
    return { forX: y.seen, forY: x.seen };
  },
  blocked: (x, y) => punchBlocked(x.nat, y.nat, x.name, y.name),
  proves: sameFamily,
};
