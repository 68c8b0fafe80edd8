import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import YAML from 'yaml';
import type { IpAddress } from '../core/net/address.js';
import { Cidr } from '../core/net/cidr.js';
import { cidrSchema, ipAddressSchema } from '../core/net/schemas.js';
import { ipv4Of, ipv4SubnetOf, NAT_PROFILES, subnetOf, type HostPlan, type LabPlan, type RouterPlan, type SegmentPlan } from './plan.js';
import { upnpRefusesWan } from './upnp-reserved.js';

export { NAT_PROFILES, type NatProfile, type HostPlan, type LabPlan, type RouterPlan, type SegmentPlan, type SubnetPlan } from './plan.js';

/** Names become namespace suffixes and veth names inside namespaces, so they must fit in IFNAMSIZ. */
const NODE_NAME = /^[a-z][a-z0-9-]{0,14}$/;
const RESERVED_NAMES = new Set(['internet', 'lan', 'wan', 'br0', 'lo', 'eth0']);
export const IFNAME = /^[A-Za-z0-9_=+.-]{1,15}$/;

const nodeName = z
  .string()
  .regex(NODE_NAME, 'must be 1-15 characters: lower-case letters, digits and "-", starting with a letter')
  .refine((n) => !RESERVED_NAMES.has(n), { message: `is reserved (${[...RESERVED_NAMES].join(', ')})` });
// The lab builds IPv4 networks only, for now: an IPv6 address is refused here, not half-built.
const ipv4 = ipAddressSchema.refine((a) => a.family === 4, { message: 'must be an IPv4 address like 192.168.1.2 (the lab builds IPv4 networks only, for now)' });
const subnet = cidrSchema.refine((c) => c.family === 4, { message: 'must be an IPv4 subnet like 192.168.1.0/24 (the lab builds IPv4 networks only, for now)' });

const wireguardSchema = z
  .object({
    interface: z
      .string()
      .max(15, 'is longer than the 15 characters Linux allows for an interface name')
      .regex(IFNAME, 'may only hold letters, digits and _=+.-'),
    listenPort: z.number().int().min(1).max(65535).optional(),
  })
  .strict();

const routerSchema = z
  .object({
    name: nodeName,
    profile: z.enum(NAT_PROFILES, {
      error: () => `must be one of ${NAT_PROFILES.join(', ')}`,
    }),
    wan: ipv4.describe('the router\'s address on its upstream network'),
    lan: subnet,
    upstream: nodeName.optional().describe('a router whose LAN this router sits on (default: the internet)'),
    hairpin: z.boolean().default(false),
    upnp: z.boolean().default(false),
    exposedHost: nodeName.optional().describe('cone: the inside host that unsolicited inbound UDP is forwarded to'),
    carrierLan: subnet.optional().describe('cgnat: the carrier network between the two NATs'),
  })
  .strict();

const hostSchema = z
  .object({
    name: nodeName,
    network: z.string().describe('"internet" or the name of a router'),
    address: ipv4,
    wireguard: wireguardSchema.optional(),
  })
  .strict();

export const topologySchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9]{0,11}$/, 'must be 1-12 lower-case letters or digits, starting with a letter'),
    description: z.string().optional(),
    internet: z.object({ subnet }).strict().default({ subnet: Cidr.parse('203.0.113.0/24') }),
    routers: z.array(routerSchema).default([]),
    hosts: z.array(hostSchema).min(1, 'a topology needs at least one host'),
  })
  .strict();

export type TopologyInput = z.input<typeof topologySchema>;
export type Topology = z.output<typeof topologySchema>;

export class TopologyError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid topology:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'TopologyError';
  }
}

function issuePath(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
}

export function parseTopology(raw: unknown): LabPlan {
  const parsed = topologySchema.safeParse(raw);
  if (!parsed.success) {
    throw new TopologyError(parsed.error.issues.map((i) => `${issuePath(i.path) || '(top)'}: ${i.message}`));
  }
  return plan(parsed.data);
}

export async function loadTopology(file: string): Promise<LabPlan> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new TopologyError([`${file}: cannot read the topology file (${(err as Error).message})`]);
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    throw new TopologyError([`${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'} (${(err as Error).message})`]);
  }
  return parseTopology(raw);
}

function plan(t: Topology): LabPlan {
  const problems: string[] = [];
  const internet: SegmentPlan = segment('internet', t.internet.subnet);

  const names = new Map<string, string>();
  const claim = (name: string, where: string) => {
    const prior = names.get(name);
    if (prior) problems.push(`${where}.name: "${name}" is already used by ${prior}; names must be unique`);
    else names.set(name, where);
  };
  t.routers.forEach((r, i) => claim(r.name, `routers[${i}]`));
  t.hosts.forEach((h, i) => claim(h.name, `hosts[${i}]`));

  const routersByName = new Map(t.routers.map((r) => [r.name, r]));
  // cgnat routers expand into a carrier NAT in front of a home NAT.
  const carrierNames = new Map<string, string>();
  t.routers.forEach((r, i) => {
    if (r.profile !== 'cgnat') return;
    const carrier = `${r.name.slice(0, 11)}-cgn`;
    if (names.has(carrier)) problems.push(`routers[${i}].name: "${carrier}" (the carrier NAT of cgnat router "${r.name}") clashes with another name`);
    carrierNames.set(r.name, carrier);
  });

  // Segments and their overlaps.
  const segments: { where: string; seg: SegmentPlan }[] = [{ where: 'internet.subnet', seg: internet }];
  t.routers.forEach((r, i) => {
    segments.push({ where: `routers[${i}].lan`, seg: segment(r.name, r.lan) });
    if (r.profile === 'cgnat') {
      const carrierLan = r.carrierLan ?? Cidr.parse(`100.64.${i}.0/24`);
      segments.push({ where: `routers[${i}].carrierLan`, seg: segment(carrierNames.get(r.name)!, carrierLan) });
    }
  });
  for (let a = 0; a < segments.length; a++) {
    for (let b = a + 1; b < segments.length; b++) {
      for (const x of segments[a].seg.subnets) {
        for (const y of segments[b].seg.subnets) {
          if (x.subnet.overlaps(y.subnet)) problems.push(`${segments[b].where}: ${y.subnet} overlaps ${segments[a].where} (${x.subnet}); choose a subnet that does not`);
        }
      }
    }
  }
  const segmentByName = new Map(segments.map((s) => [s.seg.name, s.seg]));

  // Upstream references, cycles, and where public (un-NATed) LANs may sit.
  t.routers.forEach((r, i) => {
    if (r.upstream === undefined) return;
    if (!routersByName.has(r.upstream)) problems.push(`routers[${i}].upstream: no router is named "${r.upstream}"`);
    if (r.profile === 'open' || r.profile === 'firewall') {
      problems.push(`routers[${i}].upstream: an ${r.profile} router routes public addresses and must sit on the internet; remove "upstream"`);
    }
  });
  const order = topoOrder(t.routers, problems);

  // Addresses: inside their segment's subnet of their family, usable, not the gateway, unique.
  const used = new Map<string, string>();
  const placeAddress = (where: string, ip: IpAddress, seg: SegmentPlan | undefined, segName: string) => {
    if (!seg) {
      problems.push(`${where}: network "${segName}" does not exist; use "internet" or a router's name`);
      return;
    }
    const sub = subnetOf(seg, ip.family);
    if (!sub) {
      problems.push(`${where}: ${ip} is IPv${ip.family} and ${segName} has no IPv${ip.family} subnet`);
      return;
    }
    if (!sub.subnet.isUsableHost(ip)) {
      problems.push(`${where}: ${ip} is outside ${segName}'s subnet ${sub.subnet} or is its network/broadcast address`);
      return;
    }
    if (ip.equals(sub.gateway)) {
      problems.push(`${where}: ${ip} is ${segName}'s gateway address; pick another`);
      return;
    }
    const prior = used.get(ip.toString());
    if (prior) problems.push(`${where}: ${ip} is already used by ${prior}`);
    else used.set(ip.toString(), where);
  };

  const routers: RouterPlan[] = [];
  for (const i of order) {
    const r = t.routers[i];
    const upstream = r.upstream ?? 'internet';
    const wan = r.wan;
    placeAddress(`routers[${i}].wan`, wan, segmentByName.get(upstream), upstream);
    const lan = segmentByName.get(r.name)!;
    if (r.profile === 'cgnat') {
      const carrier = carrierNames.get(r.name)!;
      const carrierLan = segmentByName.get(carrier)!;
      // A carrier-grade NAT maps endpoint-independently (RFC 6888 REQ-1 via RFC 4787) and filters like a home router.
      routers.push({ name: carrier, profile: 'restricted', nat: 'restricted', wan: [wan], upstream, lan: carrierLan, hairpin: false, upnp: false, carrierOf: r.name });
      routers.push({ name: r.name, profile: 'cgnat', nat: 'restricted', wan: [ipv4SubnetOf(carrierLan).subnet.nth(2)], upstream: carrier, lan, hairpin: r.hairpin, upnp: r.upnp });
    } else {
      routers.push({ name: r.name, profile: r.profile, nat: r.profile, wan: [wan], upstream, lan, hairpin: r.hairpin, upnp: r.upnp });
    }
    if (r.upnp && upstream === 'internet' && upnpRefusesWan(wan)) {
      problems.push(`routers[${i}].upnp: miniupnpd refuses to map ports on a reserved WAN address (${r.wan}); put the internet on a public-looking subnet such as 192.0.3.0/24`);
    }
    if (r.exposedHost !== undefined && r.profile !== 'cone') problems.push(`routers[${i}].exposedHost: only a cone router forwards unsolicited traffic to a host; remove it`);
  }

  const ifnames = new Map<string, string>();
  const hosts: HostPlan[] = t.hosts.map((h, i) => {
    const address = h.address;
    if (h.network !== 'internet' && !routersByName.has(h.network)) {
      problems.push(`hosts[${i}].network: no router is named "${h.network}"; use "internet" or a router's name`);
    } else {
      placeAddress(`hosts[${i}].address`, address, segmentByName.get(h.network), h.network);
    }
    if (h.wireguard) {
      const prior = ifnames.get(h.wireguard.interface);
      // wireguard-go's UAPI sockets share /var/run/wireguard across namespaces.
      if (prior) problems.push(`hosts[${i}].wireguard.interface: "${h.wireguard.interface}" is already used by ${prior}; WireGuard interface names must be unique across the lab`);
      else ifnames.set(h.wireguard.interface, `hosts[${i}]`);
    }
    return { name: h.name, network: h.network, addresses: [address], wireguard: h.wireguard };
  });

  // Cone routers forward unsolicited UDP to one inside host.
  t.routers.forEach((r, i) => {
    if (r.profile !== 'cone') return;
    const inside = hosts.filter((h) => h.network === r.name);
    const exposedName = r.exposedHost ?? inside[0]?.name;
    const exposed = inside.find((h) => h.name === exposedName);
    if (r.exposedHost !== undefined && !exposed) problems.push(`routers[${i}].exposedHost: "${r.exposedHost}" is not a host behind router "${r.name}"`);
    const rp = routers.find((x) => x.name === r.name);
    if (rp && exposed) rp.exposedHost = ipv4Of(exposed.addresses, `host "${exposed.name}"`);
  });

  if (problems.length) throw new TopologyError(problems);
  return { name: t.name, internet, routers, hosts };
}

function segment(name: string, subnet: Cidr): SegmentPlan {
  return { name, subnets: [{ subnet, gateway: subnet.nth(1) }] };
}

/** Orders routers so that each comes after its upstream; reports cycles. */
function topoOrder(routers: Topology['routers'], problems: string[]): number[] {
  const index = new Map(routers.map((r, i) => [r.name, i]));
  const order: number[] = [];
  const state = new Map<number, 'visiting' | 'done'>();
  const visit = (i: number, chain: string[]) => {
    if (state.get(i) === 'done') return;
    if (state.get(i) === 'visiting') {
      problems.push(`routers[${i}].upstream: routers form a loop (${[...chain, routers[i].name].join(' -> ')})`);
      return;
    }
    state.set(i, 'visiting');
    const up = routers[i].upstream;
    const j = up === undefined ? undefined : index.get(up);
    if (j !== undefined) visit(j, [...chain, routers[i].name]);
    state.set(i, 'done');
    order.push(i);
  };
  routers.forEach((_, i) => visit(i, []));
  return order;
}

export function segmentOf(plan: LabPlan, network: string): SegmentPlan | undefined {
  if (network === 'internet') return plan.internet;
  return plan.routers.find((r) => r.name === network)?.lan;
}

