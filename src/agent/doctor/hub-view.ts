import { getDevice } from '../../core/wireguard/uapi.js';
import { hubViewSchema, type HubView } from '../../core/doctor/report.js';
import { decode, type AgentConfig } from '../../core/protocol.js';
import { IpAddress } from '../../core/net/address.js';
import { Cidr } from '../../core/net/cidr.js';
import { Endpoint } from '../../core/net/endpoint.js';
import { z } from 'zod';

/**
 * On an agent: what the hub knows of this node (GET /v1/doctor over the tunnel, with the node's
 * token), and WireGuard's own view of its port and its hub peer. The hub's sighting and the
 * relay's are the two observers of WireGuard's port itself; the STUN probes measure other sockets.
 */

const MAX_BODY = 1 << 20;

export async function fetchHubView(cfg: AgentConfig, timeoutMs = 3000): Promise<{ view: HubView } | { error: string }> {
  try {
    const res = await fetch(new URL('/v1/doctor', cfg.hubUrl), { headers: { authorization: `Bearer ${cfg.token}` }, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    if (text.length > MAX_BODY) return { error: 'the hub\'s answer is too large' };
    if (!res.ok) return { error: `the hub answered ${res.status}${res.status === 404 ? ' (a hub without doctor support, or one that has not seen this node yet)' : ''}: ${text.slice(0, 200)}` };
    // decode() refuses deep nesting before parsing and names the field that is wrong.
    return { view: decode(hubViewSchema, text, "the hub's answer to GET /v1/doctor") };
  } catch (err) {
    return { error: `cannot reach the hub's API at ${cfg.hubUrl} through the tunnel: ${(err as Error).message}` };
  }
}

export interface WireGuardSelf {
  listenPort: number | null;
  hubHandshakeAgeMs: number | null;
}

/** The device's listen port and its hub peer's last handshake (the peer whose allowed IPs hold the hub's tunnel address). */
export async function wireguardSelf(ifname: string, hubTunnelAddress: string): Promise<WireGuardSelf | { error: string }> {
  try {
    const d = await getDevice(ifname);
    const hubIp = IpAddress.tryParse(hubTunnelAddress);
    const hub = hubIp && d.peers.find((p) => p.allowedIps.some((a) => Cidr.tryParse(a)?.contains(hubIp)));
    return { listenPort: d.listenPort || null, hubHandshakeAgeMs: hub && hub.lastHandshakeMs > 0 ? Date.now() - hub.lastHandshakeMs : null };
  } catch (err) {
    return { error: `cannot read WireGuard interface ${ifname}: ${(err as Error).message}` };
  }
}

/** The hub's tunnel address, from the API URL in the agent's file. */
export const hubTunnelAddress = (cfg: AgentConfig) => z.string().parse(new URL(cfg.hubUrl).hostname.replace(/^\[|\]$/g, ''));

/** Same mapping toward the hub and the relay? Only when both saw the same public address. */
export function wireguardMapping(hubSeen: string | null, relaySeen: string | null): 'independent' | 'dependent' | null {
  const h = Endpoint.tryParse(hubSeen);
  const r = Endpoint.tryParse(relaySeen);
  if (!h || !r || !h.address.equals(r.address)) return null;
  return h.port === r.port ? 'independent' : 'dependent';
}
