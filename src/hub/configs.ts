import { Cidr } from '../core/net/cidr.js';
import type { Endpoint, HostPort } from '../core/net/endpoint.js';
import type { WgQuickConfig, WgQuickPeer } from '../core/wgquick.js';
import { nodeAddress6, proxiedAddress6 } from './address-plan.js';
import type { HubSettings, NodeRecord } from './store/model.js';

/**
 * The wg-quick configs the hub hands out, built from its store (seed 000's two-config design).
 * Every node has an IPv4 and an IPv6 tunnel address (the ULA /64 + its host number); configs,
 * AllowedIPs and routes carry both.
 */

const host = (a: NodeRecord['address']) => Cidr.host(a).toString();

/** A node's tunnel addresses as host routes, both families. */
export function nodeHostRoutes(hub: HubSettings, n: NodeRecord): string[] {
  return [host(n.address), host(nodeAddress6(hub, n.hostNumber))];
}

/** What the hub routes to a node: its P2P addresses, its proxied addresses, the routes behind it. */
export function hubAllowedIps(hub: HubSettings, n: NodeRecord): string[] {
  const proxied = n.proxiedAddress ? [host(n.proxiedAddress), host(proxiedAddress6(hub, n.hostNumber))] : [];
  return [...nodeHostRoutes(hub, n), ...proxied, ...n.routes.map(String)];
}

/**
 * hub.conf: the hub's interface only. Its peers are not listed: `hub run` admits every node from
 * the store when it starts and keeps the interface equal to the store, so a `node add` never
 * rewrites this file (at 10,000 nodes that rewrite was most of the cost of adding one).
 */
export function hubConfig(hub: HubSettings): WgQuickConfig {
  return {
    interface: {
      privateKey: hub.privateKey,
      address: [hub.address.toString(), hub.address6.toString(), `${hub.proxiedSubnet.nth(1)}/${hub.proxiedSubnet.prefix}`, `${hub.proxiedSubnet6.nth(1)}/${hub.proxiedSubnet6.prefix}`],
      listenPort: hub.listenPort,
      preUp: [],
      // Proxied clients and routes behind agents are forwarded by the hub, tunnel to tunnel, in both families.
      postUp: ['sysctl -q -w net.ipv4.ip_forward=1', 'sysctl -q -w net.ipv6.conf.all.forwarding=1', 'iptables -A FORWARD -i %i -o %i -j ACCEPT', 'ip6tables -A FORWARD -i %i -o %i -j ACCEPT'],
      preDown: [],
      postDown: ['iptables -D FORWARD -i %i -o %i -j ACCEPT', 'ip6tables -D FORWARD -i %i -o %i -j ACCEPT'],
    },
    peers: [],
  };
}

/** The hub endpoint a node's config names: the one it was given, else the hub's first. */
export function hubEndpointFor(hub: HubSettings, n: Pick<NodeRecord, 'hubEndpoint'>): HostPort {
  return n.hubEndpoint ?? hub.endpoints[0];
}

/** All of the hub's endpoints, the node's own first: what an agent falls back to when its hub goes quiet. */
export function hubEndpointsFor(hub: HubSettings, n: Pick<NodeRecord, 'hubEndpoint'>): HostPort[] {
  const first = hubEndpointFor(hub, n);
  return [first, ...hub.endpoints.filter((e) => e.toString() !== first.toString())];
}

function hubPeer(hub: HubSettings, n: NodeRecord, allowedIps: string[], keepalive: number): WgQuickPeer {
  return { publicKey: hub.publicKey, allowedIps, endpoint: hubEndpointFor(hub, n).toString(), persistentKeepalive: keepalive, comment: 'hub' };
}

/** The hub's own tunnel addresses as host routes. */
function hubHostRoutes(hub: HubSettings): string[] {
  return [host(hub.address.address), host(hub.address6.address)];
}

/** What an agent's (or relay's) hub peer routes before the agent adds anything: the hub, and proxied clients. */
export function agentHubAllowedIps(hub: HubSettings): string[] {
  return [...hubHostRoutes(hub), hub.proxiedSubnet.toString(), hub.proxiedSubnet6.toString()];
}

function interfaceAddresses(hub: HubSettings, n: NodeRecord): string[] {
  return [`${n.address}/${hub.address.prefix}`, `${nodeAddress6(hub, n.hostNumber)}/${hub.address6.prefix}`];
}

export function agentConfig(hub: HubSettings, n: NodeRecord): WgQuickConfig {
  return {
    interface: { privateKey: n.privateKey, address: interfaceAddresses(hub, n), listenPort: n.listenPort ?? undefined, preUp: [], postUp: [], preDown: [], postDown: [] },
    // Clients' proxied addresses come through the hub; their P2P peers are added live by the agent.
    peers: [hubPeer(hub, n, agentHubAllowedIps(hub), hub.agentHubKeepalive)],
  };
}

/**
 * The P2P config: the hub plus one peer per agent, at that agent's public endpoint: `--endpoint`,
 * else where it was last seen (`observed`, by public key: the family the caller prefers first);
 * agents that chose proxied mode are reached through the hub.
 */
export function clientConfig(hub: HubSettings, n: NodeRecord, agents: readonly NodeRecord[], observed: ReadonlyMap<string, readonly Endpoint[]> = new Map()): WgQuickConfig {
  const viaHub = agents.filter((a) => a.proxied).flatMap((a) => [...nodeHostRoutes(hub, a), ...a.routes.map(String)]);
  return {
    interface: { privateKey: n.privateKey, address: interfaceAddresses(hub, n), listenPort: n.listenPort ?? undefined, preUp: [], postUp: [], preDown: [], postDown: [] },
    peers: [
      hubPeer(hub, n, [...hubHostRoutes(hub), ...viaHub], hub.clientHubKeepalive),
      ...agents
        .filter((a) => !a.proxied)
        .map((a) => {
          const endpoint = a.fixedEndpoint?.toString() ?? observed.get(a.publicKey)?.[0]?.toString();
          return {
            publicKey: a.publicKey,
            allowedIps: [...nodeHostRoutes(hub, a), ...a.routes.map(String)],
            endpoint,
            persistentKeepalive: hub.peerKeepalive,
            comment: `agent ${a.name}${endpoint ? '' : ' (no endpoint known yet: regenerate this config once the agent has connected)'}`,
          };
        }),
    ],
  };
}

/** The fallback: everything through the hub, which always works where UDP to the hub does. */
export function proxiedConfig(hub: HubSettings, n: NodeRecord, agents: readonly NodeRecord[]): WgQuickConfig {
  return {
    interface: { privateKey: n.privateKey, address: [`${n.proxiedAddress}/${hub.proxiedSubnet.prefix}`, `${proxiedAddress6(hub, n.hostNumber)}/${hub.proxiedSubnet6.prefix}`], preUp: [], postUp: [], preDown: [], postDown: [] },
    peers: [hubPeer(hub, n, [hub.address.subnet.toString(), hub.address6.subnet.toString(), hub.proxiedSubnet.toString(), hub.proxiedSubnet6.toString(), ...agents.flatMap((a) => a.routes.map(String))], hub.agentHubKeepalive)],
  };
}
