import { z } from 'zod';
import type { IpAddress } from '../../core/net/address.js';
import type { Cidr, Prefixed } from '../../core/net/cidr.js';
import type { Endpoint, HostPort } from '../../core/net/endpoint.js';
import { cidrSchema, hostPortSchema, prefixedSchema } from '../../core/net/schemas.js';
import { isKey } from '../../core/wireguard/keys.js';

/**
 * The hub's directory as data: its own settings, its nodes, and the change feed over them. Values
 * are parsed types (addresses, subnets, endpoints), never strings to split. No engine here: the
 * store adapters (sqlite.ts, later others) turn these into rows and back.
 */

/** The hub's identity and settings; written once by `hub init`. */
export interface HubSettings {
  privateKey: string;
  publicKey: string;
  /**
   * How nodes reach the hub: an IPv4 and an IPv6 endpoint, or one of them, or a DNS name (with
   * A and AAAA records), each with a port. The first is what configs use unless a node was given
   * another (NodeRecord.hubEndpoint); agents fall back to the others by themselves.
   */
  endpoints: HostPort[];
  /** The hub's tunnel address with the tunnel network's prefix, e.g. 10.99.0.1/24. */
  address: Prefixed;
  /** The hub's IPv6 tunnel address in the tunnel's ULA /64 (RFC 4193), e.g. fd3c:1a2b:3c4d::1/64; nodes get prefix + host number. */
  address6: Prefixed;
  /** Where clients' proxied configs take their addresses (and joining agents their one-time tunnel's). */
  proxiedSubnet: Cidr;
  /** The same for IPv6: the /64 after the tunnel's. */
  proxiedSubnet6: Cidr;
  listenPort: number;
  apiPort: number;
  /** Keepalive in a client's config toward the hub: bounds how fast the hub notices a roam. */
  clientHubKeepalive: number;
  /** Keepalive in a client's config toward agent nodes, and that agents set toward clients. */
  peerKeepalive: number;
  /** Keepalive in an agent's config toward the hub. */
  agentHubKeepalive: number;
  staleAfterSec: number;
}

const keySchema = z.string().refine(isKey, { message: 'must be a WireGuard key (44 characters of base64)' });
const portSchema = z.number().int().min(1).max(65535);
const secondsSchema = z.number().int().min(0).max(65535);

/**
 * The hub's settings as stored (JSON), decoded to values. Stores written before IPv6 have one
 * `endpoint` and no IPv6 prefix; the SQLite adapter's migration (schema 4) adds them before this
 * ever reads them, so here they are required.
 */
export const hubSettingsSchema = z.object({
  privateKey: keySchema,
  publicKey: keySchema,
  endpoints: z.array(hostPortSchema).min(1).max(2),
  address: prefixedSchema,
  address6: prefixedSchema.refine((p) => p.family === 6 && p.prefix === 64, { message: 'must be an IPv6 address with prefix /64' }),
  proxiedSubnet: cidrSchema,
  proxiedSubnet6: cidrSchema.refine((c) => c.family === 6, { message: 'must be an IPv6 subnet' }),
  listenPort: portSchema,
  apiPort: portSchema,
  clientHubKeepalive: secondsSchema,
  peerKeepalive: secondsSchema,
  agentHubKeepalive: secondsSchema,
  staleAfterSec: z.number().int().positive(),
});

export function hubSettingsToJson(h: HubSettings): string {
  return JSON.stringify({
    ...h,
    endpoints: h.endpoints.map(String),
    address: h.address.toString(),
    address6: h.address6.toString(),
    proxiedSubnet: h.proxiedSubnet.toString(),
    proxiedSubnet6: h.proxiedSubnet6.toString(),
  });
}

export const NODE_KINDS = ['agent', 'client', 'relay'] as const;
/** Relays are nodes too: a tunnel to the hub is how they register and get allocations. */
export type NodeKind = (typeof NODE_KINDS)[number];

export interface NodeRecord {
  /** The node's identity in the directory (and its interface name): it never changes. */
  name: string;
  kind: NodeKind;
  /**
   * Its place in the tunnel network: address = network + host number. Everything numbered per
   * node follows from it (proxied address, join tunnel address, a client's listen port).
   */
  hostNumber: number;
  address: IpAddress;
  proxiedAddress: IpAddress | null;
  publicKey: string;
  /** '' when the node made its own key (it joined with a code): the hub never sees it. */
  privateKey: string;
  tokenHash: string | null;
  fixedEndpoint: HostPort | null;
  /** Which of the hub's endpoints this node's config uses (an IPv6-only network needs the IPv6 one); null: the first. */
  hubEndpoint: HostPort | null;
  listenPort: number | null;
  routes: Cidr[];
  createdAt: string;
  /** Join codes: the code's one-time public key, while the hub still answers for it. */
  enrolKey: string | null;
  /** When the code stops being accepted (ms since the epoch). */
  enrolExpiresAt: number | null;
  enrolUsed: boolean;
  /** Nodes see and reach each other only when they share a group. */
  groups: string[];
  /** Agents: reach every peer through the hub instead of directly (the second fallback, chosen by the user). */
  proxied: boolean;
  /** The store revision of the node's last change (see NodeChanges). */
  revision: number;
}

/** A node waiting for its device to join: known only by the code's one-time key, nobody's peer yet. */
export function isPending(n: NodeRecord): boolean {
  return n.enrolKey !== null && !n.enrolUsed;
}

/** What the directory decides about a new node; the store adds its place in the network. */
export type NodeDraft = Omit<NodeRecord, 'hostNumber' | 'address' | 'proxiedAddress' | 'listenPort' | 'revision'>;

/** Everything about a node that follows from its host number. */
export interface Placement {
  address: IpAddress;
  proxiedAddress: IpAddress | null;
  listenPort: number | null;
}

/**
 * Where a new node goes. The store picks the host number inside its write transaction, so two
 * `node add` at once can never pick the same one.
 */
export interface HostRequest {
  /** This host number (the operator gave an address), or else the lowest free one in [first, last]. */
  hostNumber?: number;
  first: number;
  last: number;
  /** Never allocated (the hub's own address). */
  reserved: readonly number[];
  /** May throw to refuse a host number (the caller's error is passed on and nothing is written). */
  place(hostNumber: number): Placement;
}

/** What `node set` can change. */
export interface NodeUpdate {
  groups?: string[];
  routes?: Cidr[];
  proxied?: boolean;
  /** null: back to the hub's first endpoint. */
  hubEndpoint?: HostPort | null;
}

export interface RemovedNode {
  name: string;
  publicKey: string;
  /** The revision of the removal. */
  revision: number;
}

/**
 * The change feed. Every change of the directory gets the next revision; a reader keeps the
 * revision it has seen and asks for what came after. Apply `removed` before `upserted` (a name
 * removed and added again appears in both, and the one in `upserted` is the node that exists).
 */
export interface NodeChanges {
  /** The revision the reader is at after applying this; pass it to the next `changesSince`. */
  revision: number;
  /** `upserted` is the whole directory and the reader must forget every node not in it (first read, or too far behind). */
  reset: boolean;
  upserted: NodeRecord[];
  removed: RemovedNode[];
}

/**
 * Where a node was last seen, per address family: IPv4 where the hub's device saw it (its NAT's
 * mapping), IPv6 where the hub saw it or where its agent says it listens (no NAT). Kept apart from
 * the directory: a roam is not a directory change.
 */
export interface Observation {
  publicKey: string;
  /** Its family is part of the key: a node has at most one of each. */
  endpoint: Endpoint;
  /** When the hub saw it there (ms since the epoch). */
  at: number;
}
