import type { CandidateKind, EndpointPair, KindId, NodeView } from './kind.js';
import { lan } from './lan.js';
import { mapped } from './mapped.js';
import { publicIpv4 } from './public-ipv4.js';
import { publicIpv6 } from './public-ipv6.js';

export type { CandidateKind, EndpointPair, KindId, NodeView } from './kind.js';
export { KIND_IDS } from './kind.js';

/** Every kind, best first. */
export const KINDS: readonly CandidateKind[] = [lan, mapped, publicIpv4, publicIpv6].sort((a, b) => a.priority - b.priority);

const byId = new Map<KindId, CandidateKind>(KINDS.map((k) => [k.id, k]));

export function kindOf(id: KindId): CandidateKind {
  const k = byId.get(id);
  if (!k) throw new Error(`no candidate kind "${id}"`);
  return k;
}

export interface Candidate extends EndpointPair {
  readonly kind: CandidateKind;
}

/** Every candidate for x and y, best first. */
export function gather(x: NodeView, y: NodeView): Candidate[] {
  const out: Candidate[] = [];
  for (const kind of KINDS) {
    const pair = kind.gather(x, y);
    if (pair) out.push({ kind, ...pair });
  }
  return out;
}
