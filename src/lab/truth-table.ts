import { Cidr } from '../core/net/cidr.js';
import type { TopologyInput } from './topology.js';

/** What the probes measure about one router, from outside, with plain UDP. `null`: does not apply. */
export interface Behaviour {
  /** Outbound UDP reaches the internet. */
  udp: boolean;
  /** Which outbound TCP ports pass: every one tried, only 80/443, or none. */
  tcp: 'all' | '80/443' | 'none';
  /** Same external ip:port toward different destinations (RFC 4787 endpoint-independent mapping)? */
  mapping: 'independent' | 'dependent' | null;
  /** External port equals the inside port. */
  portPreserved: boolean | null;
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
}

export interface VerifyRow {
  /** Row name, also the router's name in the verify topology. */
  row: string;
  profile: string;
  hairpin: boolean;
  upnp: boolean;
}

export const VERIFY_ROWS: VerifyRow[] = [
  { row: 'open', profile: 'open', hairpin: false, upnp: false },
  { row: 'firewall', profile: 'firewall', hairpin: false, upnp: false },
  { row: 'cone', profile: 'cone', hairpin: false, upnp: false },
  { row: 'restricted', profile: 'restricted', hairpin: false, upnp: false },
  { row: 'leaky', profile: 'restricted-leaky', hairpin: false, upnp: false },
  { row: 'symmetric', profile: 'symmetric', hairpin: false, upnp: false },
  { row: 'udpblocked', profile: 'udp-blocked', hairpin: false, upnp: false },
  { row: 'cgnat', profile: 'cgnat', hairpin: false, upnp: false },
  { row: 'hairpin', profile: 'restricted', hairpin: true, upnp: false },
  { row: 'upnp', profile: 'restricted', hairpin: false, upnp: true },
];

/** The behaviour each profile is named for. `wgp2p lab verify` compares measurements against it. */
export const EXPECTED: Record<string, Behaviour> = {
  open: { udp: true, tcp: 'all', mapping: 'independent', portPreserved: true, filtering: 'independent', unsolicited: true, hairpin: null, portSurvivesProbe: null, upnp: null, natpmp: null },
  firewall: { udp: true, tcp: 'all', mapping: 'independent', portPreserved: true, filtering: 'address+port', unsolicited: false, hairpin: null, portSurvivesProbe: null, upnp: null, natpmp: null },
  cone: { udp: true, tcp: 'all', mapping: 'independent', portPreserved: true, filtering: 'independent', unsolicited: true, hairpin: false, portSurvivesProbe: true, upnp: null, natpmp: null },
  restricted: { udp: true, tcp: 'all', mapping: 'independent', portPreserved: true, filtering: 'address+port', unsolicited: false, hairpin: false, portSurvivesProbe: true, upnp: null, natpmp: null },
  leaky: { udp: true, tcp: 'all', mapping: 'independent', portPreserved: true, filtering: 'address+port', unsolicited: false, hairpin: false, portSurvivesProbe: false, upnp: null, natpmp: null },
  symmetric: { udp: true, tcp: 'all', mapping: 'dependent', portPreserved: false, filtering: 'address+port', unsolicited: false, hairpin: false, portSurvivesProbe: false, upnp: null, natpmp: null },
  udpblocked: { udp: false, tcp: '80/443', mapping: null, portPreserved: null, filtering: null, unsolicited: false, hairpin: null, portSurvivesProbe: null, upnp: null, natpmp: null },
  cgnat: { udp: true, tcp: 'all', mapping: 'independent', portPreserved: true, filtering: 'address+port', unsolicited: false, hairpin: false, portSurvivesProbe: true, upnp: null, natpmp: null },
  hairpin: { udp: true, tcp: 'all', mapping: 'independent', portPreserved: true, filtering: 'address+port', unsolicited: false, hairpin: true, portSurvivesProbe: true, upnp: null, natpmp: null },
  upnp: { udp: true, tcp: 'all', mapping: 'independent', portPreserved: true, filtering: 'address+port', unsolicited: false, hairpin: false, portSurvivesProbe: true, upnp: true, natpmp: true },
};

/** miniupnpd refuses documentation ranges as WAN addresses, so the verify internet uses a range it accepts. */
export const VERIFY_INTERNET = '192.0.3.0/24';
export const PROBE_SERVERS = { s1: '192.0.3.2', s2: '192.0.3.3' } as const;

/** One router per row, two hosts behind each, two probe servers on the internet. */
export function verifyTopology(name: string): TopologyInput {
  const routers: NonNullable<TopologyInput['routers']> = [];
  const hosts: TopologyInput['hosts'] = [
    { name: 's1', network: 'internet', address: PROBE_SERVERS.s1 },
    { name: 's2', network: 'internet', address: PROBE_SERVERS.s2 },
  ];
  VERIFY_ROWS.forEach((v, i) => {
    // open and firewall route public addresses; the others get private LANs.
    const lan = v.profile === 'open' || v.profile === 'firewall' ? `198.51.100.${i * 16}/28` : `192.168.${100 + i}.0/24`;
    const at = (n: number) => Cidr.parse(lan).nth(n).toString();
    routers.push({ name: v.row, profile: v.profile as never, wan: `192.0.3.${20 + i}`, lan, hairpin: v.hairpin, upnp: v.upnp });
    hosts.push({ name: `${v.row}-a`, network: v.row, address: at(2) }, { name: `${v.row}-b`, network: v.row, address: at(3) });
  });
  return { name, description: 'one router per NAT profile, probed from two servers', internet: { subnet: VERIFY_INTERNET }, routers, hosts };
}
