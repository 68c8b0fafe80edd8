import { lookup } from 'node:dns/promises';
import { IpAddress } from '../../core/net/address.js';
import { Endpoint, HostPort } from '../../core/net/endpoint.js';

/**
 * Where the hub's STUN responder is, per family: the hub's endpoints (or what the user gave as
 * `--hub`: an address or DNS name, with or without a port) with the STUN port. A DNS name gives
 * an address of each family it has.
 */
export async function stunServers(hubs: readonly string[], stunPort: number): Promise<{ 4: Endpoint | null; 6: Endpoint | null }> {
  const out: { 4: Endpoint | null; 6: Endpoint | null } = { 4: null, 6: null };
  for (const text of hubs) {
    const bare = IpAddress.tryParse(text);
    const hp = bare ? undefined : HostPort.parse(/:\d+$/.test(text) ? text : `${text}:${stunPort}`);
    const addresses = bare ? [bare] : hp!.address ? [hp!.address] : (await lookup(hp!.host, { all: true }).catch(() => [])).map((a) => IpAddress.parse(a.address));
    // A port given with the address is the STUN port (the default is only for a bare address or name).
    for (const a of addresses) out[a.family] ??= Endpoint.of(a, hp?.port ?? stunPort);
  }
  return out;
}
