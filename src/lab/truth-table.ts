import type { Family } from '../core/net/address.js';
import { Cidr } from '../core/net/cidr.js';
import type { Firewall6 } from './plan.js';
import type { TopologyInput } from './topology.js';

/**
 * What the probes measure about one router, from outside, with plain UDP, in one address family
 * (the row's). `null`: does not apply.
 */
export interface Behaviour {
  /** Outbound UDP reaches the internet. */
  udp: boolean;
  /** Which outbound TCP ports pass: every one tried, only 80/443, or none. */
  tcp: 'all' | '80/443' | 'none';
  /** Same external ip:port toward different destinations (RFC 4787 endpoint-independent mapping)? */
  mapping: 'independent' | 'dependent' | null;
  /** External port equals the inside port. */
  portPreserved: boolean | null;
  /** External address equals the host's own: nothing translates (public IPv4 behind open/firewall, and all IPv6: no NAT66). */
  addressKept: boolean | null;
  /** Who may answer a mapping: anyone, the same address, or only the same address and port. */
  filtering: 'independent' | 'address' | 'address+port' | null;
  /** An inbound datagram reaches a host that has sent nothing. */
  unsolicited: boolean;
  /** A host reaches another host behind the same router through that router's public mapping. */
  hairpin: boolean | null;
  /** After an unsolicited datagram hit the router's WAN port, an inside host still gets that port (section 6). */
  portSurvivesProbe: boolean | null;
  /** A UPnP-IGD mapping requested by the host forwards real traffic. */
  upnp: boolean | null;
  /** A NAT-PMP mapping requested by the host forwards real traffic. */
  natpmp: boolean | null;
  /** A PCP MAP (RFC 6887, the project's own codec) requested by the host forwards real traffic. */
  pcp: boolean | null;
  /**
   * IPv6: a simultaneous send between the host and a host behind another stateful firewall gets
   * through both ways (the hole punch). IPv4 punching depends on both NATs and is measured with
   * WireGuard by the NAT matrix instead.
   */
  punch: boolean | null;
}

export interface VerifyRow {
  /** Row name; also the router's name in the verify topology unless `router` says otherwise. */
  row: string;
  profile: string;
  hairpin: boolean;
  upnp: boolean;
  /** The family the probes use. */
  family: Family;
  /** The router's IPv6 firewall; absent: the router has no IPv6. */
  ipv6?: Firewall6;
  /** The hosts behind the router have no IPv4 address (and no IPv4 route). */
  ipv6Only?: boolean;
  /** Measure the hosts of another row's router (in another family). */
  router?: string;
}

const v4 = (row: string, profile: string, flags: { hairpin?: boolean; upnp?: boolean } = {}): VerifyRow => ({ row, profile, hairpin: flags.hairpin ?? false, upnp: flags.upnp ?? false, family: 4 });

export const VERIFY_ROWS: VerifyRow[] = [
  v4('open', 'open'),
  v4('firewall', 'firewall'),
  v4('cone', 'cone'),
  v4('restricted', 'restricted'),
  v4('leaky', 'restricted-leaky'),
  v4('symmetric', 'symmetric'),
  v4('udpblocked', 'udp-blocked'),
  v4('cgnat', 'cgnat'),
  v4('hairpin', 'restricted', { hairpin: true }),
  v4('upnp', 'restricted', { upnp: true }),
  // IPv6 behind home routers (restricted IPv4 NAT beside it): RFC 6092's stateful firewall, an open one, IPv6-only hosts.
  { row: 'stateful6', profile: 'restricted', hairpin: false, upnp: false, family: 6, ipv6: 'stateful' },
  { row: 'open6', profile: 'restricted', hairpin: false, upnp: false, family: 6, ipv6: 'open' },
  { row: 'v6only', profile: 'restricted', hairpin: false, upnp: false, family: 6, ipv6: 'stateful', ipv6Only: true },
  // The family that is not there must not leak: IPv6-only hosts over IPv4, a router without IPv6 over IPv6.
  { row: 'v6only4', profile: 'restricted', hairpin: false, upnp: false, family: 4, router: 'v6only' },
  { row: 'nov6', profile: 'restricted', hairpin: false, upnp: false, family: 6, router: 'restricted' },
];

/** The router every IPv6 row's host punches with: a home router with RFC 6092's firewall, one host behind it. */
export const PUNCH_PEER = { router: 'punch6', host: 'punch6-a' } as const;

/** The behaviour each profile is named for. `wgp2p lab verify` compares measurements against it. */
const NONE = { hairpin: null, portSurvivesProbe: null, upnp: null, natpmp: null, pcp: null, punch: null } as const;
const NAT = { mapping: 'independent', portPreserved: true, addressKept: false, filtering: 'address+port', unsolicited: false, hairpin: false, portSurvivesProbe: true, upnp: null, natpmp: null, pcp: null, punch: null } as const;
const NO_PATH = { udp: false, tcp: 'none', mapping: null, portPreserved: null, addressKept: null, filtering: null, unsolicited: false, ...NONE } as const;
const IPV6_STATEFUL = { udp: true, tcp: 'all', mapping: 'independent', portPreserved: true, addressKept: true, filtering: 'address+port', unsolicited: false, ...NONE, punch: true } as const;
export const EXPECTED: Record<string, Behaviour> = {
  open: { udp: true, tcp: 'all', mapping: 'independent', portPreserved: true, addressKept: true, filtering: 'independent', unsolicited: true, ...NONE },
  firewall: { udp: true, tcp: 'all', mapping: 'independent', portPreserved: true, addressKept: true, filtering: 'address+port', unsolicited: false, ...NONE },
  cone: { udp: true, tcp: 'all', ...NAT, filtering: 'independent', unsolicited: true },
  restricted: { udp: true, tcp: 'all', ...NAT },
  leaky: { udp: true, tcp: 'all', ...NAT, portSurvivesProbe: false },
  symmetric: { udp: true, tcp: 'all', ...NAT, mapping: 'dependent', portPreserved: false, portSurvivesProbe: false },
  udpblocked: { ...NO_PATH, tcp: '80/443' },
  cgnat: { udp: true, tcp: 'all', ...NAT },
  hairpin: { udp: true, tcp: 'all', ...NAT, hairpin: true },
  upnp: { udp: true, tcp: 'all', ...NAT, upnp: true, natpmp: true, pcp: true },
  stateful6: IPV6_STATEFUL,
  open6: { ...IPV6_STATEFUL, filtering: 'independent', unsolicited: true },
  v6only: IPV6_STATEFUL,
  v6only4: NO_PATH,
  nov6: NO_PATH,
};

/** miniupnpd refuses documentation ranges as WAN addresses, so the verify internet uses a range it accepts. */
export const VERIFY_INTERNET = '192.0.3.0/24';
export const PROBE_SERVERS = { s1: '192.0.3.2', s2: '192.0.3.3' } as const;
export const VERIFY_INTERNET6 = '2001:db8::/64';
export const PROBE_SERVERS6 = { s1: '2001:db8::2', s2: '2001:db8::3' } as const;

/**
 * One router per row (rows that measure another row's router in the other family add none), two
 * hosts behind each, two dual-stack probe servers on the internet, and the IPv6 punch peer.
 */
export function verifyTopology(name: string): TopologyInput {
  const routers: NonNullable<TopologyInput['routers']> = [];
  const hosts: TopologyInput['hosts'] = [
    { name: 's1', network: 'internet', address: PROBE_SERVERS.s1, address6: PROBE_SERVERS6.s1 },
    { name: 's2', network: 'internet', address: PROBE_SERVERS.s2, address6: PROBE_SERVERS6.s2 },
  ];
  const own = VERIFY_ROWS.filter((v) => v.router === undefined);
  const peer: VerifyRow = { row: PUNCH_PEER.router, profile: 'restricted', hairpin: false, upnp: false, family: 6, ipv6: 'stateful' };
  [...own, peer].forEach((v, i) => {
    // open and firewall route public addresses; the others get private LANs.
    const lan = v.profile === 'open' || v.profile === 'firewall' ? `198.51.100.${i * 16}/28` : `192.168.${100 + i}.0/24`;
    const at = (n: number) => Cidr.parse(lan).nth(n).toString();
    const prefix = `2001:db8:${100 + i}::`;
    const ipv6 = v.ipv6 ? { prefix: `${prefix}/48`, firewall: v.ipv6 } : undefined;
    routers.push({ name: v.row, profile: v.profile as never, wan: `192.0.3.${20 + i}`, lan, hairpin: v.hairpin, upnp: v.upnp, ...(ipv6 ? { ipv6 } : {}) });
    for (const [n, suffix] of (v === peer ? [[2, 'a']] : [[2, 'a'], [3, 'b']]) as [number, string][]) {
      hosts.push({ name: `${v.row}-${suffix}`, network: v.row, ...(v.ipv6Only ? {} : { address: at(n) }), ...(ipv6 ? { address6: `${prefix}${n}` } : {}) });
    }
  });
  return { name, description: 'one router per NAT profile and IPv6 firewall, probed from two servers', internet: { subnet: VERIFY_INTERNET, subnet6: VERIFY_INTERNET6 }, routers, hosts };
}
