import { formatCidr, formatIPv4, parseCidr } from './ipv4.js';
import type { HubRecord, NodeRecord } from './store.js';
import type { WgQuickConfig, WgQuickPeer } from './wgquick.js';

/** The wg-quick configs the hub hands out, built from its store (seed 000's two-config design). */

export function p2pSubnet(hub: HubRecord): string {
  return formatCidr(parseCidr(hub.address)!);
}

const hostOf = (cidr: string) => cidr.split('/')[0];
const prefixOf = (cidr: string) => cidr.split('/')[1];

/** What the hub routes to a node: its P2P address, its proxied address, the routes behind it. */
export function hubAllowedIps(n: NodeRecord): string[] {
  return [`${n.address}/32`, ...(n.proxiedAddress ? [`${n.proxiedAddress}/32`] : []), ...n.routes];
}

export function hubConfig(hub: HubRecord, nodes: NodeRecord[]): WgQuickConfig {
  return {
    interface: {
      privateKey: hub.privateKey,
      address: [hub.address, `${nthAddress(hub.proxiedSubnet, 1)}/${prefixOf(hub.proxiedSubnet)}`],
      listenPort: hub.listenPort,
      preUp: [],
      // Proxied clients and routes behind agents are forwarded by the hub, tunnel to tunnel.
      postUp: ['sysctl -q -w net.ipv4.ip_forward=1', 'iptables -A FORWARD -i %i -o %i -j ACCEPT'],
      preDown: [],
      postDown: ['iptables -D FORWARD -i %i -o %i -j ACCEPT'],
    },
    // Nodes still waiting to join are added by `hub run` (their one-time keys), not written here.
    peers: nodes.filter((n) => !(n.enrolKey && !n.enrolUsed)).map((n) => ({ publicKey: n.publicKey, allowedIps: hubAllowedIps(n), comment: `${n.kind} ${n.name}` })),
  };
}

function hubPeer(hub: HubRecord, allowedIps: string[], keepalive: number): WgQuickPeer {
  return { publicKey: hub.publicKey, allowedIps, endpoint: hub.endpoint, persistentKeepalive: keepalive, comment: 'hub' };
}

/** What an agent's (or relay's) hub peer routes before the agent adds anything: the hub, and proxied clients. */
export function agentHubAllowedIps(hub: HubRecord): string[] {
  return [`${hostOf(hub.address)}/32`, hub.proxiedSubnet];
}

export function agentConfig(hub: HubRecord, n: NodeRecord): WgQuickConfig {
  return {
    interface: { privateKey: n.privateKey, address: [`${n.address}/${prefixOf(hub.address)}`], listenPort: n.listenPort ?? undefined, preUp: [], postUp: [], preDown: [], postDown: [] },
    // Clients' proxied addresses come through the hub; their P2P peers are added live by the agent.
    peers: [hubPeer(hub, agentHubAllowedIps(hub), hub.agentHubKeepalive)],
  };
}

/** The P2P config: the hub plus one peer per agent, at that agent's public endpoint; agents that chose proxied mode are reached through the hub. */
export function clientConfig(hub: HubRecord, n: NodeRecord, agents: NodeRecord[]): WgQuickConfig {
  const viaHub = agents.filter((a) => a.proxied).flatMap((a) => [`${a.address}/32`, ...a.routes]);
  return {
    interface: { privateKey: n.privateKey, address: [`${n.address}/${prefixOf(hub.address)}`], listenPort: n.listenPort ?? undefined, preUp: [], postUp: [], preDown: [], postDown: [] },
    peers: [
      hubPeer(hub, [`${hostOf(hub.address)}/32`, ...viaHub], hub.clientHubKeepalive),
      ...agents.filter((a) => !a.proxied).map((a) => ({
        publicKey: a.publicKey,
        allowedIps: [`${a.address}/32`, ...a.routes],
        endpoint: a.fixedEndpoint ?? a.observedEndpoint ?? undefined,
        persistentKeepalive: hub.peerKeepalive,
        comment: `agent ${a.name}${a.fixedEndpoint || a.observedEndpoint ? '' : ' (no endpoint known yet: regenerate this config once the agent has connected)'}`,
      })),
    ],
  };
}

/** The fallback: everything through the hub, which always works where UDP to the hub does. */
export function proxiedConfig(hub: HubRecord, n: NodeRecord, agents: NodeRecord[]): WgQuickConfig {
  return {
    interface: { privateKey: n.privateKey, address: [`${n.proxiedAddress}/${prefixOf(hub.proxiedSubnet)}`], preUp: [], postUp: [], preDown: [], postDown: [] },
    peers: [hubPeer(hub, [p2pSubnet(hub), hub.proxiedSubnet, ...agents.flatMap((a) => a.routes)], hub.agentHubKeepalive)],
  };
}

export function nthAddress(subnet: string, n: number): string {
  return formatIPv4(parseCidr(subnet)!.network + n);
}
