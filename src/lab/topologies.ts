import type { TopologyInput } from './topology.js';

/** Two hosts "a" and "b", each behind its own router (of `profile`, and `profileB` for b), and a public host "relay". */
export function natPair(name: string, profile: 'restricted' | 'symmetric', profileB = profile): TopologyInput {
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
