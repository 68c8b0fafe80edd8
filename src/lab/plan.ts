import { z } from 'zod';
import type { Family, IpAddress } from '../core/net/address.js';
import type { Cidr } from '../core/net/cidr.js';
import { cidrSchema, ipAddressSchema } from '../core/net/schemas.js';
import { DATA_PLANES, type DataPlane } from './data-plane.js';

/**
 * A lab as it is built: segments, routers and hosts with their addresses as values. What the
 * topology file says is in topology.ts; this is what it becomes.
 *
 * Addresses are kept per family as lists (at most one entry per family), not as one IPv4 field:
 * a dual-stack internet, a router's IPv6 prefix beside its NATed IPv4 LAN, or an IPv6-only host
 * is then more entries, not another shape.
 */

export const NAT_PROFILES = ['open', 'firewall', 'cone', 'restricted', 'restricted-leaky', 'symmetric', 'udp-blocked', 'http-proxy', 'cgnat'] as const;
export type NatProfile = (typeof NAT_PROFILES)[number];

/**
 * What a router does with IPv6 it forwards (there is no NAT66): `stateful` is RFC 6092's home
 * router, which lets in only replies to what went out; `open` forwards everything.
 */
export const FIREWALLS6 = ['stateful', 'open'] as const;
export type Firewall6 = (typeof FIREWALLS6)[number];

/** One family's addressing on a segment. */
export interface SubnetPlan {
  subnet: Cidr;
  /** The segment owner's address on it (the internet core, or the router's LAN side). */
  gateway: IpAddress;
}

/** A network segment: the internet or one router's LAN. Lives as a bridge in its owner's namespace. */
export interface SegmentPlan {
  /** "internet" or the owning router's name. */
  name: string;
  /** At most one per family. */
  subnets: SubnetPlan[];
}

export interface RouterPlan {
  name: string;
  /** What the user asked for (cgnat shows as cgnat even though it is built from two NATs). */
  profile: NatProfile;
  /** Filtering/mapping behaviour actually installed in this namespace (for IPv4: it is the NAT's). */
  nat: Exclude<NatProfile, 'cgnat'>;
  /** The router's addresses on its upstream segment, at most one per family. */
  wan: IpAddress[];
  upstream: string;
  lan: SegmentPlan;
  hairpin: boolean;
  upnp: boolean;
  /** cone: the IPv4 address of the inside host that unsolicited inbound UDP is forwarded to. */
  exposedHost?: IpAddress;
  /** True for the carrier NAT that a cgnat router expands into. */
  carrierOf?: string;
  /** The IPv6 prefix routed to the router (its LAN is the first /64) and its firewall; absent: no IPv6. */
  ipv6?: { prefix: Cidr; firewall: Firewall6 };
}

export interface HostPlan {
  name: string;
  network: string;
  /** On its segment, at most one per family; hosts carry their current ones after a move. */
  addresses: IpAddress[];
  wireguard?: { interface: string; listenPort?: number };
}

export interface LabPlan {
  name: string;
  internet: SegmentPlan;
  /** Upstream routers come before the routers behind them. */
  routers: RouterPlan[];
  hosts: HostPlan[];
  /** Which WireGuard the lab runs; absent: what WGP2P_DATA_PLANE says when it comes up (see Lab.dataPlane). */
  dataPlane?: DataPlane;
}

export function subnetOf(seg: SegmentPlan, family: Family): SubnetPlan | undefined {
  return seg.subnets.find((s) => s.subnet.family === family);
}

export function addressOf(addresses: readonly IpAddress[], family: Family): IpAddress | undefined {
  return addresses.find((a) => a.family === family);
}

/** The IPv4 address where the lab needs one (NAT rules, probes); `what` names the node in the error. */
export function ipv4Of(addresses: readonly IpAddress[], what: string): IpAddress {
  const a = addressOf(addresses, 4);
  if (!a) throw new Error(`${what} has no IPv4 address`);
  return a;
}

/** The IPv6 address where the lab needs one; `what` names the node in the error. */
export function ipv6Of(addresses: readonly IpAddress[], what: string): IpAddress {
  const a = addressOf(addresses, 6);
  if (!a) throw new Error(`${what} has no IPv6 address`);
  return a;
}

export function ipv4SubnetOf(seg: SegmentPlan): SubnetPlan {
  const s = subnetOf(seg, 4);
  if (!s) throw new Error(`network "${seg.name}" has no IPv4 subnet`);
  return s;
}

// The lab record stores the plan as JSON (values write themselves as their text) and decodes it
// again here, so that a process attaching to a lab gets values, and a damaged record is refused.
const subnetPlanSchema = z.object({ subnet: cidrSchema, gateway: ipAddressSchema });
const segmentPlanSchema = z.object({ name: z.string(), subnets: z.array(subnetPlanSchema).max(2) });
const addresses = z.array(ipAddressSchema).max(2);
const labPlanSchema = z.object({
  name: z.string(),
  internet: segmentPlanSchema,
  routers: z.array(
    z.object({
      name: z.string(),
      profile: z.enum(NAT_PROFILES),
      nat: z.enum(NAT_PROFILES).exclude(['cgnat']),
      wan: addresses,
      upstream: z.string(),
      lan: segmentPlanSchema,
      hairpin: z.boolean(),
      upnp: z.boolean(),
      exposedHost: ipAddressSchema.optional(),
      carrierOf: z.string().optional(),
      ipv6: z.object({ prefix: cidrSchema, firewall: z.enum(FIREWALLS6) }).optional(),
    }),
  ),
  hosts: z.array(
    z.object({
      name: z.string(),
      network: z.string(),
      addresses,
      wireguard: z.object({ interface: z.string(), listenPort: z.number().int().optional() }).optional(),
    }),
  ),
  dataPlane: z.enum(DATA_PLANES).optional(),
});

/** The plan from a lab record, or undefined when the record does not hold one (damaged, or from an older wgp2p). */
export function decodePlan(raw: unknown): LabPlan | undefined {
  const r = labPlanSchema.safeParse(raw);
  return r.success ? r.data : undefined;
}
