import type { NatBehaviour } from '../nat.js';
import type { Prefixed } from '../net/cidr.js';
import type { Endpoint } from '../net/endpoint.js';

/**
 * A candidate is one way two agents may reach each other directly: a pair of endpoints, one for
 * each side to send to. Each kind of candidate is one module (lan.ts, public-ipv4.ts, …) that
 * says how it is gathered, how it ranks, how long an attempt on it may take, and what proves it.
 * The hub's pair coordinator and the agent's attempt executor only ever iterate over kinds.
 *
 * Adding a kind: one module implementing CandidateKind, its id in KIND_IDS, its entry in
 * index.ts, and its unit test.
 */

/** The wire names of the kinds, in the protocol and in `status --json`. */
export const KIND_IDS = ['lan', 'public4', 'public6', 'mapped'] as const;
export type KindId = (typeof KIND_IDS)[number];

/** What the hub knows about one node, as the kinds need it. */
export interface NodeView {
  readonly name: string;
  /** Where the hub's own WireGuard device last saw the node: its NAT's mapping toward the hub. */
  readonly seen: Endpoint | null;
  /** The node's own interface addresses (both families), as its agent reported them. */
  readonly interfaces: readonly Prefixed[];
  /** The port the node's WireGuard listens on. */
  readonly listenPort: number | null;
  /** What the hub learned about the node's IPv4 NAT. */
  readonly nat: NatBehaviour;
  /**
   * The public IPv4 endpoint the node's router says it forwards to the node's WireGuard port
   * (UPnP-IGD, NAT-PMP or PCP), as its agent reported it; null or absent: none.
   */
  readonly mapped?: Endpoint | null;
}

/** Where x sends to reach y, and y to reach x. */
export interface EndpointPair {
  readonly forX: Endpoint;
  readonly forY: Endpoint;
}

export interface CandidateKind {
  readonly id: KindId;
  /** Lower is tried first. */
  readonly priority: number;
  /** How long each side listens for the other after the punch. */
  readonly windowMs: number;
  /** Where, in words: "the LAN", "the direct IPv4 path". */
  readonly label: string;
  /** Short, for tables: "LAN", "IPv4". */
  readonly name: string;
  /**
   * Whether the path crosses both nodes' IPv4 NATs as the hub sees them: then the endpoint each
   * side heard the other at is a second observation of the other's NAT mapping, and the outcome
   * teaches the hub about filtering.
   */
  readonly crossesNat: boolean;
  /** Hub: the endpoints x and y try toward each other, or undefined when this kind does not apply. */
  gather(x: NodeView, y: NodeView): EndpointPair | undefined;
  /** Hub: why this kind cannot work for x and y as far as the hub knows, or null. A scheduled retry tries anyway. */
  blocked(x: NodeView, y: NodeView): string | null;
  /**
   * Agent: whether WireGuard authenticating the peer's packets from `from` (it moved the
   * endpoint there) proves the candidate `tried`. The executor has already ruled out the relay.
   */
  proves(from: Endpoint, tried: Endpoint): boolean;
  /**
   * Hub: which side must send the handshake initiation for this kind ('x' or 'y'), or null to
   * leave it to the usual rule (hub/pairs/initiator.ts). Absent: null.
   */
  initiator?(x: NodeView, y: NodeView): 'x' | 'y' | null;
  /**
   * Agent: whether the side that only answers opens its own NAT toward the candidate before it
   * says ready (agent/open-nat.ts). Absent: true.
   */
  readonly responderOpensNat?: boolean;
  /**
   * Hub: the side whose router's port mapping ('x' or 'y') carries this kind's packets in, or
   * null. An attempt in which that side heard nothing counts against the mapping
   * (hub/nat-knowledge.ts), so one that does not forward stops being tried. Absent: null.
   */
  reliesOnMappingOf?(x: NodeView, y: NodeView): 'x' | 'y' | null;
}

/** The usual proof: the peer's packets arrive over the family the candidate is made of. */
export function sameFamily(from: Endpoint, tried: Endpoint): boolean {
  return from.family === tried.family;
}
