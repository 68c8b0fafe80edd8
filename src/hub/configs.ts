import { Cidr } from '../core/net/cidr.js';
import type { Endpoint } from '../core/net/endpoint.js';
import type { WgQuickConfig, WgQuickPeer } from '../core/wgquick.js';
import type { HubSettings, NodeRecord } from './store/model.js';

/** The wg-quick configs the hub hands out, built from its store (seed 000's two-config design). */

const host = (n: NodeRecord['address']) => Cidr.host(n).toString();

/** What the hub routes to a node: its P2P address, its proxied address, the routes behind it. */
export function hubAllowedIps(n: NodeRecord): string[] {
  return [host(n.address), ...(n.proxiedAddress ? [host(n.proxiedAddress)] : []), ...n.routes.map(String)];
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
      address: [hub.address.toString(), `${hub.proxiedSubnet.nth(1)}/${hub.proxiedSubnet.prefix}`],
      listenPort: hub.listenPort,
      preUp: [],
      // Proxied clients and routes behind agents are forwarded by the hub, tunnel to tunnel.
      postUp: ['sysctl -q -w net.ipv4.ip_forward=1', 'iptables -A FORWARD -i %i -o %i -j ACCEPT'],
      preDown: [],
      postDown: ['iptables -D FORWARD -i %i -o %i -j ACCEPT'],
    },
    peers: [],
  };
}

function hubPeer(hub: HubSettings, allowedIps: string[], keepalive: number): WgQuickPeer {
  return { publicKey: hub.publicKey, allowedIps, endpoint: hub.endpoint.toString(), persistentKeepalive: keepalive, comment: 'hub' };
}

/** What an agent's (or relay's) hub peer routes before the agent adds anything: the hub, and proxied clients. */
export function agentHubAllowedIps(hub: HubSettings): string[] {
  return [host(hub.address.address), hub.proxiedSubnet.toString()];
}

const interfaceAddress = (hub: HubSettings, n: NodeRecord) => `${n.address}/${hub.address.prefix}`;

export function agentConfig(hub: HubSettings, n: NodeRecord): WgQuickConfig {
  return {
    interface: { privateKey: n.privateKey, address: [interfaceAddress(hub, n)], listenPort: n.listenPort ?? undefined, preUp: [], postUp: [], preDown: [], postDown: [] },
    // Clients' proxied addresses come through the hub; their P2P peers are added live by the agent.
    peers: [hubPeer(hub, agentHubAllowedIps(hub), hub.agentHubKeepalive)],
  };
}

/**
 * The P2P config: the hub plus one peer per agent, at that agent's public endpoint (`--endpoint`,
 * else where the hub last saw it: `observed`, by public key); agents that chose proxied mode are
 * reached through the hub.
 */
export function clientConfig(hub: HubSettings, n: NodeRecord, agents: readonly NodeRecord[], observed: ReadonlyMap<string, { endpoint: Endpoint }> = new Map()): WgQuickConfig {
  const viaHub = agents.filter((a) => a.proxied).flatMap((a) => [host(a.address), ...a.routes.map(String)]);
  return {
    interface: { privateKey: n.privateKey, address: [interfaceAddress(hub, n)], listenPort: n.listenPort ?? undefined, preUp: [], postUp: [], preDown: [], postDown: [] },
    peers: [
      hubPeer(hub, [host(hub.address.address), ...viaHub], hub.clientHubKeepalive),
      ...agents
        .filter((a) => !a.proxied)
        .map((a) => {
          const endpoint = a.fixedEndpoint?.toString() ?? observed.get(a.publicKey)?.endpoint.toString();
          return {
            publicKey: a.publicKey,
            allowedIps: [host(a.address), ...a.routes.map(String)],
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
    interface: { privateKey: n.privateKey, address: [`${n.proxiedAddress}/${hub.proxiedSubnet.prefix}`], preUp: [], postUp: [], preDown: [], postDown: [] },
    peers: [hubPeer(hub, [hub.address.subnet.toString(), hub.proxiedSubnet.toString(), ...agents.flatMap((a) => a.routes.map(String))], hub.agentHubKeepalive)],
  };
}
