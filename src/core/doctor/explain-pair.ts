import type { NodeStatusJson, PairStatusJson } from '../status.js';
import type { PortMappingProtocol } from './report.js';
import { PROTOCOL_NAMES } from './report.js';

/**
 * A pair that is not direct, explained in words from what the hub knows of both NATs (its
 * nat-knowledge status): "phone <-> device relayed: phone's NAT maps per destination (…), and
 * device's router filters by address and port (…); device's router offers no port mapping".
 */

type Nat = NonNullable<NodeStatusJson['nat']>;

export interface PairSide {
  name: string;
  nat?: Nat;
  /** The port-mapping protocol its router answers, null if none does, undefined if not known. */
  portMapping?: PortMappingProtocol | null;
  leaky?: boolean;
}

/**
 * A peer's side as the hub knows it: the port mapping its agent reported, and whether the hub's
 * WAN probe found its router leaky. No mapping reported is not "offers none": the agent may run
 * with --no-port-mapping, or its router may answer only after the next try.
 */
export function sideFromStatus(name: string, nat: Nat | undefined): PairSide {
  const pm = nat?.portMapping;
  return { name, nat, portMapping: pm ? pm.protocol : undefined, leaky: nat?.leaky === 'yes' };
}

const pathWord = (p: PairStatusJson) => (p.mode === 'relay' ? 'relayed' : p.mode === 'hub' ? 'through the hub (proxied)' : p.mode === 'no-path' ? 'not connected' : p.mode === 'waiting' ? 'waiting for both agents' : 'direct');

export function explainPair(p: PairStatusJson, a: PairSide, b: PairSide): string {
  const head = `${p.a} <-> ${p.b} ${pathWord(p)}`;
  if (p.mode === 'direct') return `${head}${p.candidate ? ` (${p.candidate})` : ''}`;
  if (p.mode === 'hub') return `${head}: a node of it asked for proxied mode`;
  if (p.mode === 'waiting') return `${head}: the hub needs both agents connected to coordinate the pair`;
  const clauses: string[] = [];
  const sym = (s: PairSide) => s.nat?.mapping === 'dependent';
  const filters = (s: PairSide) => s.nat?.filtering === 'dependent';
  for (const s of [a, b]) if (sym(s)) clauses.push(`${s.name}'s NAT maps per destination (${s.nat!.mappingWhy})`);
  for (const s of [a, b]) if (filters(s) && (sym(a) || sym(b)) && !sym(s)) clauses.push(`${s.name}'s router filters by address and port (${s.nat!.filteringWhy})`);
  for (const s of [a, b]) if (s.leaky) clauses.push(`${s.name}'s router takes a port when a peer's packet arrives first (leaky)`);
  const noMapping = [a, b].filter((s) => s.portMapping === null && (sym(s) || filters(s)));
  let text = clauses.length ? `${head}: ${clauses.join(', and ')}` : `${head}: ${p.reason ?? 'the hub has no reason recorded'}`;
  if (noMapping.length) text += `; ${noMapping.map((s) => `${s.name}'s router offers no port mapping (UPnP, NAT-PMP, PCP)`).join('; ')}`;
  const mapped = [a, b].filter((s) => s.portMapping);
  if (mapped.length) text += `; ${mapped.map((s) => `${s.name}'s router answers ${PROTOCOL_NAMES[s.portMapping!]}`).join('; ')}`;
  if (clauses.length && p.reason) text += ` (hub: ${p.reason})`;
  return text;
}

/**
 * A plain client whose direct path to an agent does not work, in words: the agent's reason (it
 * watched the attempt: "direct impossible from this network (its NAT changed the port …)") and
 * what the hub knows of the agent's router. A client cannot be relayed: it has its proxied config.
 */
export function explainClientPath(client: string, agent: PairSide, path: { path: string; reason: string | null }): string {
  const head = `${client} <-> ${agent.name} ${path.path === 'impossible' ? 'not direct' : path.path}`;
  const parts = [path.reason ?? 'no reason reported'];
  if (agent.nat?.filtering === 'dependent') parts.push(`${agent.name}'s router filters by address and port (${agent.nat.filteringWhy})`);
  let text = `${head}: ${parts.join(', and ')}`;
  if (agent.portMapping === null) text += `; ${agent.name}'s router offers no port mapping (UPnP, NAT-PMP, PCP), which would let ${client} in directly`;
  else if (agent.portMapping) text += `; ${agent.name}'s router answers ${PROTOCOL_NAMES[agent.portMapping]}`;
  return text;
}
