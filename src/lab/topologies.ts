import type { TopologyInput } from './topology.js';

/** Two hosts "a" and "b", each behind its own router (of `profile`, and `profileB` for b), and a public host "relay". */
export type PairProfile = 'restricted' | 'restricted-leaky' | 'symmetric';

export function natPair(name: string, profile: PairProfile, profileB: PairProfile = profile): TopologyInput {
  return {
    name,
    routers: [
      { name: 'home1', profile, wan: '203.0.113.10', lan: '192.168.10.0/24' },
      { name: 'home2', profile: profileB, wan: '203.0.113.20', lan: '192.168.20.0/24' },
    ],
    hosts: [
      { name: 'relay', network: 'internet', address: '203.0.113.2' },
      { name: 'a', network: 'home1', address: '192.168.10.2' },
      { name: 'b', network: 'home2', address: '192.168.20.2' },
    ],
  };
}

/**
 * `natPair` with a router between the two NATs, as on the internet: each home router (of
 * `profile`, `profileB` for b) sits behind its own ISP router (`open`: public addresses, no
 * filter). On `natPair`'s one link every router's next hop is the other router, so no TTL can
 * pass one NAT and stop before the other; here a packet with TTL 2 dies at the ISP router.
 */
export function ispPair(name: string, profile: PairProfile, profileB: PairProfile = profile): TopologyInput {
  return {
    name,
    routers: [
      { name: 'isp1', profile: 'open', wan: '203.0.113.10', lan: '198.51.100.0/28' },
      { name: 'isp2', profile: 'open', wan: '203.0.113.20', lan: '198.51.100.16/28' },
      { name: 'home1', profile, upstream: 'isp1', wan: '198.51.100.2', lan: '192.168.10.0/24' },
      { name: 'home2', profile: profileB, upstream: 'isp2', wan: '198.51.100.18', lan: '192.168.20.0/24' },
    ],
    hosts: [
      { name: 'relay', network: 'internet', address: '203.0.113.2' },
      { name: 'a', network: 'home1', address: '192.168.10.2' },
      { name: 'b', network: 'home2', address: '192.168.20.2' },
    ],
  };
}

/** A public hub and an agent host "device" behind a home router "home" (restricted), plus extra empty home routers to roam to. */
export function hubAndDevice(name: string, extraRouters: string[] = []): TopologyInput {
  return {
    name,
    routers: ['home', ...extraRouters].map((r, i) => ({ name: r, profile: 'restricted' as const, wan: `203.0.113.${10 * (i + 1)}`, lan: `192.168.${10 * (i + 1)}.0/24` })),
    hosts: [
      { name: 'hub', network: 'internet', address: '203.0.113.2' },
      { name: 'device', network: 'home', address: '192.168.10.2' },
    ],
  };
}

export interface HostBehind {
  host: string;
  router: string;
  profile?: 'open' | 'firewall' | 'cone' | 'restricted' | 'restricted-leaky' | 'symmetric' | 'udp-blocked' | 'cgnat';
}

/**
 * A public hub ("hub", 203.0.113.2) and hosts behind home routers, one router per distinct name
 * (router i: WAN 203.0.113.10i, LAN 192.168.10i.0/24; its hosts get .2, .3, …). `empty` routers
 * have no host (networks to roam to); `publicHosts` sit on the internet (203.0.113.3 onwards).
 */
export function behindRouters(name: string, hosts: HostBehind[], opts: { empty?: Omit<HostBehind, 'host'>[]; publicHosts?: string[] } = {}): TopologyInput {
  const routers: NonNullable<TopologyInput['routers']> = [];
  const out: TopologyInput['hosts'] = [{ name: 'hub', network: 'internet', address: '203.0.113.2' }];
  (opts.publicHosts ?? []).forEach((h, i) => out.push({ name: h, network: 'internet', address: `203.0.113.${3 + i}` }));
  const index = new Map<string, number>();
  const used = new Map<string, number>();
  for (const h of [...hosts, ...(opts.empty ?? [])]) {
    if (index.has(h.router)) continue;
    const i = index.size + 1;
    index.set(h.router, i);
    routers.push({ name: h.router, profile: h.profile ?? 'restricted', wan: `203.0.113.${10 * i}`, lan: `192.168.${10 * i}.0/24` });
  }
  for (const h of hosts) {
    const n = (used.get(h.router) ?? 1) + 1;
    used.set(h.router, n);
    out.push({ name: h.host, network: h.router, address: `192.168.${10 * index.get(h.router)!}.${n}` });
  }
  return { name, routers, hosts: out };
}

/** One side of `dualStackPair`: its router's IPv4 NAT (none: the host has no IPv4 address) and whether it has IPv6. */
export interface DualStackSide {
  ipv4?: 'restricted' | 'symmetric';
  ipv6?: boolean;
}

/**
 * `natPair` on a dual-stack internet: hosts "a" and "b" behind their own routers, each with the
 * IPv4 NAT its side names and, where it has IPv6, a prefix behind RFC 6092's stateful firewall;
 * a side without IPv4 is an IPv6-only host. The public host "relay" has both families.
 */
export function dualStackPair(name: string, a: DualStackSide, b: DualStackSide): TopologyInput {
  const sides = [
    ['a', 'home1', a, 10],
    ['b', 'home2', b, 20],
  ] as const;
  return {
    name,
    internet: { subnet: '203.0.113.0/24', subnet6: '2001:db8::/64' },
    routers: sides.map(([, router, side, n]) => ({
      name: router,
      profile: side.ipv4 ?? 'restricted',
      wan: `203.0.113.${n}`,
      lan: `192.168.${n}.0/24`,
      ...(side.ipv6 ? { ipv6: { prefix: `2001:db8:${n}::/48`, firewall: 'stateful' as const } } : {}),
    })),
    hosts: [
      { name: 'relay', network: 'internet', address: '203.0.113.2', address6: '2001:db8::2' },
      ...sides.map(([host, router, side, n]) => ({
        name: host,
        network: router,
        ...(side.ipv4 ? { address: `192.168.${n}.2` } : {}),
        ...(side.ipv6 ? { address6: `2001:db8:${n}::2` } : {}),
      })),
    ],
  };
}
