import { readFile } from 'node:fs/promises';
import { listOf } from '../core/schema-list.js';
import { z } from 'zod';
import { publicEndpointProblem, type IpAddress } from '../core/net/address.js';
import { Cidr } from '../core/net/cidr.js';
import { cidrSchema, ipAddressSchema } from '../core/net/schemas.js';
import { addressOf, FIREWALLS6, ipv4SubnetOf, NAT_PROFILES, subnetOf, type HostPlan, type LabPlan, type RouterPlan, type SegmentPlan } from './plan.js';
import { DATA_PLANES } from './data-plane.js';
import { upnpRefusesWan } from './upnp-reserved.js';
import { nestingOver } from '../core/json.js';
import { parseYaml } from './topology-yaml.js';

export { FIREWALLS6, NAT_PROFILES, type Firewall6, type NatProfile, type HostPlan, type LabPlan, type RouterPlan, type SegmentPlan, type SubnetPlan } from './plan.js';

/** Names become namespace suffixes and veth names inside namespaces, so they must fit in IFNAMSIZ. */
const NODE_NAME = /^[a-z][a-z0-9-]{0,14}$/;
const RESERVED_NAMES = new Set(['internet', 'lan', 'wan', 'br0', 'lo', 'eth0']);
export const IFNAME = /^[A-Za-z0-9_=+.-]{1,15}$/;

const nodeName = z
  .string()
  .regex(NODE_NAME, 'must be 1-15 characters: lower-case letters, digits and "-", starting with a letter')
  .refine((n) => !RESERVED_NAMES.has(n), { message: `is reserved (${[...RESERVED_NAMES].join(', ')})` });
// Each family has its own fields, so an address in the wrong one is refused with where it goes.
const ipv4 = (example: string, v6Field: string) =>
  ipAddressSchema.refine((a) => a.family === 4, { message: `must be an IPv4 address like ${example}; an IPv6 address goes in ${v6Field}` });
const ipv6 = (example: string, v4Field: string) =>
  ipAddressSchema.refine((a) => a.family === 6, { message: `must be an IPv6 address like ${example}; an IPv4 address goes in ${v4Field}` });
const subnet4 = (example: string, v6Field: string) =>
  cidrSchema.refine((c) => c.family === 4, { message: `must be an IPv4 subnet like ${example}; an IPv6 one goes in ${v6Field}` });
const subnet6 = (example: string) => cidrSchema.refine((c) => c.family === 6, { message: `must be an IPv6 prefix like ${example}` });

/** The internet's IPv6 segment when IPv6 is asked for and `internet.subnet6` is not given (RFC 3849 documentation space). */
export const DEFAULT_INTERNET6 = '2001:db8::/64';

const ipv6RouterSchema = z
  .object({
    prefix: subnet6('2001:db8:10::/48').describe('routed to the router; its LAN is the first /64'),
    wan: ipv6('2001:db8::10', 'wan').optional().describe("the router's IPv6 address on the internet (default: the internet's IPv6 subnet + the host number of wan)"),
    firewall: z.enum(FIREWALLS6, { error: () => `must be one of ${FIREWALLS6.join(', ')}` }).default('stateful'),
  })
  .strict();

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
    wan: ipv4('203.0.113.10', 'ipv6.wan').describe('the router\'s address on its upstream network'),
    lan: subnet4('192.168.1.0/24', 'ipv6.prefix'),
    upstream: nodeName.optional().describe('a router whose LAN this router sits on (default: the internet)'),
    hairpin: z.boolean().default(false),
    upnp: z.boolean().default(false),
    exposedHost: nodeName.optional().describe('cone: the inside host that unsolicited inbound UDP is forwarded to'),
    carrierLan: subnet4('100.64.0.0/24', 'ipv6.prefix').optional().describe('cgnat: the carrier network between the two NATs'),
    carrier: z
      .enum(['restricted', 'symmetric'], { error: () => 'must be restricted (endpoint-independent, as RFC 6888 asks) or symmetric (a carrier NAT that maps per destination)' })
      .optional()
      .describe('cgnat: how the carrier NAT maps (default restricted)'),
    ipv6: ipv6RouterSchema.optional().describe('absent: no IPv6 behind this router'),
  })
  .strict();

const hostSchema = z
  .object({
    name: nodeName,
    network: z.string().describe('"internet" or the name of a router'),
    address: ipv4('192.168.1.2', 'address6').optional().describe('absent: an IPv6-only host'),
    address6: ipv6('2001:db8:10::2', 'address').optional(),
    wireguard: wireguardSchema.optional(),
  })
  .strict();

export const topologySchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9]{0,11}$/, 'must be 1-12 lower-case letters or digits, starting with a letter'),
    description: z.string().optional(),
    internet: z
      .object({ subnet: subnet4('203.0.113.0/24', 'subnet6'), subnet6: subnet6(DEFAULT_INTERNET6).optional() })
      .strict()
      .default({ subnet: Cidr.parse('203.0.113.0/24') }),
    // Every router is a namespace with its own nftables (and a carrier's for cgnat) on a 2-core
    // machine; the NAT matrix, the largest lab, has 17. Checking 256 of them cost 15 ms.
    routers: listOf(routerSchema, { max: 64 }).default([]),
    hosts: listOf(hostSchema, { min: 1, max: 128 }),
    dataPlane: z
      .enum(DATA_PLANES, { error: () => `must be ${DATA_PLANES.join(' or ')} (kernel: Linux's WireGuard module; userspace: wireguard-go)` })
      .optional()
      .describe('absent: WGP2P_DATA_PLANE, else userspace'),
  })
  .strict();

export type TopologyInput = z.input<typeof topologySchema>;
export type Topology = z.output<typeof topologySchema>;

export class TopologyError extends Error {
  constructor(readonly problems: string[]) {
    // The first problems are what a person fixes first; a file of 300 copies of one router needs no 300 lines.
    const shown = problems.slice(0, 20).map((p) => `  - ${p}`);
    if (problems.length > 20) shown.push(`  - and ${problems.length - 20} more`);
    super(`invalid topology:\n${shown.join('\n')}`);
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
  return parseTopologyText(text, file);
}

/**
 * A lab topology is a page of text. The caps keep the slowest hostile file under the hardening
 * issue's 10 ms (bench/fuzz.ts): the yaml library parses at 1-2 µs per byte even when the text is
 * valid (the NAT matrix written as YAML, 2.7 KB, took it 5 ms), JSON.parse at a hundredth of that.
 * The largest file in topologies/ is 1.3 KB; bigger labs are generated in code (lab/nat-matrix.ts).
 */
const MAX_TOPOLOGY_TEXT = { json: 16 << 10, yaml: 4 << 10 };
const MAX_TOPOLOGY_NESTING = 64;

/** A topology file's text: JSON when `file` ends in .json, else YAML. Every refusal is a TopologyError. */
export function parseTopologyText(text: string, file: string): LabPlan {
  const json = file.endsWith('.json');
  const max = json ? MAX_TOPOLOGY_TEXT.json : MAX_TOPOLOGY_TEXT.yaml;
  if (text.length > max) {
    const hint = json ? 'split the lab, or generate it in code' : `write it as JSON (up to ${MAX_TOPOLOGY_TEXT.json}), split the lab, or generate it in code`;
    throw new TopologyError([`${file}: ${text.length} characters; a ${json ? 'JSON' : 'YAML'} topology file is at most ${max} (${hint})`]);
  }
  // The YAML parser recurses per flow level: 2 KiB of "[" overflowed its stack and took 100 ms to
  // report. A topology nests a few levels; brackets in single-quoted YAML strings count too, hence the margin.
  const deep = nestingOver(text, MAX_TOPOLOGY_NESTING);
  if (deep > 0) throw new TopologyError([`${file}: brackets nest over ${MAX_TOPOLOGY_NESTING} deep at character ${deep}; a topology needs a few levels`]);
  let raw: unknown;
  try {
    raw = json ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new TopologyError([`${file}: not valid ${json ? 'JSON' : 'YAML'} (${(err as Error).message})`]);
  }
  return parseTopology(raw);
}

function plan(t: Topology): LabPlan {
  const problems: string[] = [];
  // The internet gets IPv6 only when something asks for it, so an IPv4 topology builds what it always did.
  const wantsIpv6 = t.routers.some((r) => r.ipv6) || t.hosts.some((h) => h.address6);
  const inet6 = t.internet.subnet6 ?? (wantsIpv6 ? Cidr.parse(DEFAULT_INTERNET6) : undefined);
  const internet: SegmentPlan = segment('internet', t.internet.subnet, inet6);
  if (t.internet.subnet6) globalPrefix('internet.subnet6', t.internet.subnet6, problems);

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

  // IPv6 behind a router: a global prefix routed to it by the internet core; its LAN is the first /64.
  const lan6 = new Map<string, Cidr>();
  t.routers.forEach((r, i) => {
    if (!r.ipv6) return;
    const where = `routers[${i}].ipv6`;
    if (r.upstream !== undefined || r.profile === 'cgnat') {
      // Nested routers would need prefix delegation through their upstream, which the lab does not build.
      problems.push(`${where}: only a router on the internet gets an IPv6 prefix (this one ${r.upstream !== undefined ? `sits behind "${r.upstream}"` : 'is a cgnat router, built behind a carrier NAT'}); remove ipv6, or ${r.upstream !== undefined ? 'remove upstream' : 'use another profile'}`);
      return;
    }
    if (!globalPrefix(`${where}.prefix`, r.ipv6.prefix, problems)) return;
    if (r.ipv6.prefix.prefix > 64) {
      problems.push(`${where}.prefix: ${r.ipv6.prefix} is longer than /64; the LAN is the prefix's first /64, so give a /64 or shorter, like 2001:db8:10::/48`);
      return;
    }
    lan6.set(r.name, Cidr.of(r.ipv6.prefix.network, 64));
  });

  // Subnets that must not overlap: segments, and whole routed IPv6 prefixes.
  const claims: { where: string; cidr: Cidr }[] = [{ where: 'internet.subnet', cidr: t.internet.subnet }];
  if (inet6) claims.push({ where: t.internet.subnet6 ? 'internet.subnet6' : `internet.subnet6 (default ${DEFAULT_INTERNET6})`, cidr: inet6 });
  const segments: SegmentPlan[] = [internet];
  t.routers.forEach((r, i) => {
    claims.push({ where: `routers[${i}].lan`, cidr: r.lan });
    if (r.ipv6 && lan6.has(r.name)) claims.push({ where: `routers[${i}].ipv6.prefix`, cidr: r.ipv6.prefix });
    segments.push(segment(r.name, r.lan, lan6.get(r.name)));
    if (r.profile === 'cgnat') {
      const carrierLan = r.carrierLan ?? Cidr.parse(`100.64.${i}.0/24`);
      claims.push({ where: `routers[${i}].carrierLan`, cidr: carrierLan });
      segments.push(segment(carrierNames.get(r.name)!, carrierLan));
    }
  });
  // Subnets are intervals: sorted by start, one overlaps another exactly when it starts before the
  // widest earlier one ends. Pairwise checks of 256 routers cost 60 ms of BigInt masks.
  const sorted = claims.map((c, i) => ({ ...c, i, start: c.cidr.network.value, end: c.cidr.network.value + c.cidr.size })).sort((x, y) => x.cidr.family - y.cidr.family || (x.start < y.start ? -1 : x.start > y.start ? 1 : x.i - y.i));
  let widest: (typeof sorted)[number] | undefined;
  for (const c of sorted) {
    if (widest && widest.cidr.family === c.cidr.family && c.start < widest.end) {
      const [x, y] = widest.i < c.i ? [widest, c] : [c, widest];
      problems.push(`${y.where}: ${y.cidr} overlaps ${x.where} (${x.cidr}); choose a subnet that does not`);
    }
    if (!widest || widest.cidr.family !== c.cidr.family || c.end > widest.end) widest = c;
  }
  const segmentByName = new Map(segments.map((s) => [s.name, s]));

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
  const placeAddress = (where: string, ip: IpAddress, seg: SegmentPlan | undefined, segName: string): boolean => {
    if (!seg) {
      problems.push(`${where}: network "${segName}" does not exist; use "internet" or a router's name`);
      return false;
    }
    const sub = subnetOf(seg, ip.family);
    if (!sub) {
      const fix = segName === 'internet' ? 'give the internet an IPv6 subnet (internet.subnet6)' : `give router "${segName}" an IPv6 prefix (ipv6: { prefix: … })`;
      problems.push(`${where}: ${ip} is IPv${ip.family} and ${segName} has no IPv${ip.family} subnet; ${ip.family === 6 ? fix : 'remove it'}`);
      return false;
    }
    if (!sub.subnet.isUsableHost(ip)) {
      problems.push(`${where}: ${ip} is outside ${segName}'s subnet ${sub.subnet} or is its network/broadcast address`);
      return false;
    }
    if (ip.equals(sub.gateway)) {
      problems.push(`${where}: ${ip} is ${segName}'s gateway address; pick another`);
      return false;
    }
    const prior = used.get(ip.toString());
    if (prior) {
      problems.push(`${where}: ${ip} is already used by ${prior}`);
      return false;
    }
    used.set(ip.toString(), where);
    return true;
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
      // A carrier-grade NAT should map endpoint-independently (RFC 6888 REQ-1 via RFC 4787) and filter like a home
      // router; many mobile carriers map per destination instead, which `carrier: symmetric` builds.
      const nat = r.carrier ?? 'restricted';
      routers.push({ name: carrier, profile: nat, nat, wan: [wan], upstream, lan: carrierLan, hairpin: false, upnp: false, carrierOf: r.name });
      routers.push({ name: r.name, profile: 'cgnat', nat: 'restricted', wan: [ipv4SubnetOf(carrierLan).subnet.nth(2)], upstream: carrier, lan, hairpin: r.hairpin, upnp: r.upnp });
    } else {
      const rp: RouterPlan = { name: r.name, profile: r.profile, nat: r.profile, wan: [wan], upstream, lan, hairpin: r.hairpin, upnp: r.upnp };
      if (r.ipv6 && lan6.has(r.name) && inet6) {
        const wan6 = r.ipv6.wan ?? defaultWan6(wan, t.internet.subnet, inet6);
        const where = r.ipv6.wan ? `routers[${i}].ipv6.wan` : `routers[${i}].ipv6.wan (default ${wan6 ?? 'none'})`;
        if (!wan6) problems.push(`${where}: ${inet6} has no address with the host number of wan ${wan}; give ipv6.wan`);
        else if (placeAddress(where, wan6, internet, 'internet')) rp.wan.push(wan6);
        rp.ipv6 = { prefix: r.ipv6.prefix, firewall: r.ipv6.firewall };
      }
      routers.push(rp);
    }
    if (r.upnp && upstream === 'internet' && upnpRefusesWan(wan)) {
      problems.push(`routers[${i}].upnp: miniupnpd refuses to map ports on a reserved WAN address (${r.wan}); put the internet on a public-looking subnet such as 192.0.3.0/24`);
    }
    if (r.carrier !== undefined && r.profile !== 'cgnat') problems.push(`routers[${i}].carrier: only a cgnat router has a carrier NAT; remove carrier or use profile cgnat`);
    if (r.profile === 'http-proxy' && (r.upnp || r.hairpin || r.ipv6)) {
      problems.push(`routers[${i}]: an http-proxy router lets its LAN out only through its HTTP proxy (CONNECT to 443); remove ${[r.upnp && 'upnp', r.hairpin && 'hairpin', r.ipv6 && 'ipv6'].filter(Boolean).join(' and ')}, or use another profile`);
    }
    if (r.exposedHost !== undefined && r.profile !== 'cone') problems.push(`routers[${i}].exposedHost: only a cone router forwards unsolicited traffic to a host; remove it`);
  }

  const ifnames = new Map<string, string>();
  const hosts: HostPlan[] = t.hosts.map((h, i) => {
    const addresses: IpAddress[] = [];
    if (h.network !== 'internet' && !routersByName.has(h.network)) {
      problems.push(`hosts[${i}].network: no router is named "${h.network}"; use "internet" or a router's name`);
    } else if (h.address === undefined && h.address6 === undefined) {
      problems.push(`hosts[${i}].address: missing; give address (IPv4), address6 (IPv6; alone, the host is IPv6-only) or both`);
    } else {
      for (const [field, ip] of [['address', h.address], ['address6', h.address6]] as const) {
        if (ip && placeAddress(`hosts[${i}].${field}`, ip, segmentByName.get(h.network), h.network)) addresses.push(ip);
      }
    }
    if (h.wireguard) {
      const prior = ifnames.get(h.wireguard.interface);
      // wireguard-go's UAPI sockets share /var/run/wireguard across namespaces.
      if (prior) problems.push(`hosts[${i}].wireguard.interface: "${h.wireguard.interface}" is already used by ${prior}; WireGuard interface names must be unique across the lab`);
      else ifnames.set(h.wireguard.interface, `hosts[${i}]`);
    }
    return { name: h.name, network: h.network, addresses, wireguard: h.wireguard };
  });

  // Cone routers forward unsolicited UDP to one inside host (IPv4: it is the NAT that forwards).
  t.routers.forEach((r, i) => {
    if (r.profile !== 'cone') return;
    const inside = hosts.filter((h) => h.network === r.name);
    const exposed = r.exposedHost !== undefined ? inside.find((h) => h.name === r.exposedHost) : inside.find((h) => addressOf(h.addresses, 4));
    if (r.exposedHost !== undefined && !exposed) problems.push(`routers[${i}].exposedHost: "${r.exposedHost}" is not a host behind router "${r.name}"`);
    const v4 = exposed && addressOf(exposed.addresses, 4);
    if (exposed && !v4) problems.push(`routers[${i}].exposedHost: "${exposed.name}" has no IPv4 address for the NAT to forward to; give it one, or expose another host`);
    const rp = routers.find((x) => x.name === r.name);
    if (rp && v4) rp.exposedHost = v4;
  });

  if (problems.length) throw new TopologyError(problems);
  return { name: t.name, internet, routers, hosts, ...(t.dataPlane ? { dataPlane: t.dataPlane } : {}) };
}

function segment(name: string, subnet: Cidr, subnet6?: Cidr): SegmentPlan {
  const subnets = [{ subnet, gateway: subnet.nth(1) }];
  if (subnet6) subnets.push({ subnet: subnet6, gateway: subnet6.nth(1) });
  return { name, subnets };
}

/** A routed IPv6 prefix must be global: with no NAT66, a unique-local or link-local one reaches nothing. */
function globalPrefix(where: string, prefix: Cidr, problems: string[]): boolean {
  const why = publicEndpointProblem(prefix.network);
  if (why === null) return true;
  problems.push(`${where}: ${prefix} is ${why}; IPv6 in the lab is routed without NAT, so use global space such as 2001:db8::/32 (documentation)`);
  return false;
}

/** A router's IPv6 WAN address by default: the internet's IPv6 subnet + the host number its IPv4 WAN address has. */
function defaultWan6(wan: IpAddress, subnet4: Cidr, subnet6: Cidr): IpAddress | undefined {
  const n = subnet4.offsetOf(wan);
  return n !== undefined && n < subnet6.size ? subnet6.nth(n) : undefined;
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

