import type { Endpoint } from '../core/net/endpoint.js';
import type { WireGuardDevice } from '../core/wireguard/device.js';
import { generateKeyPair } from '../core/wireguard/keys.js';
import { NO_PUNCH_TTL, type PunchTtl } from './punch-ttl.js';

/**
 * Opens our NAT (or stateful firewall) toward `endpoint` from WireGuard's own socket with a
 * packet the peer cannot take: a handshake initiation for a throwaway peer. Its mac1 is keyed
 * with a key that is not the peer's, so the peer's WireGuard drops it before any state changes,
 * wherever it arrives; our NAT still maps the socket toward the peer as for any packet.
 *
 * Only WireGuard's socket has the source port the peer was told about, and without a session
 * WireGuard sends nothing but initiations; a real one from both sides is what crosses
 * (attempt.ts). Measured in the lab: the initiation goes out during the request that turns the
 * keepalive on (0 -> 1), before the next request removes the peer again, which also stops its
 * 5 s retries (bench/crossing.ts --mode roles: 20 of 20 handshakes behind two home NATs with
 * ~110 ms between them, where both sending at once crossed in 16 of 20).
 *
 * With `ttl` (punch-ttl.ts) the packet dies before the peer's router: a router that accepts
 * unsolicited WAN input would otherwise take the packet and give its host another port.
 */
export async function openNat(device: WireGuardDevice, endpoint: Endpoint, ttl: PunchTtl = NO_PUNCH_TTL): Promise<void> {
  const throwaway = generateKeyPair().publicKey;
  await ttl.limited(endpoint, () => device.set({ peers: [{ publicKey: throwaway, endpoint, persistentKeepalive: 0 }, { publicKey: throwaway, persistentKeepalive: 1 }] }));
  await device.set({ peers: [{ publicKey: throwaway, remove: true }] });
}
