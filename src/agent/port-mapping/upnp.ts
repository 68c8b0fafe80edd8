import type { Gateway } from '@achingbrain/nat-port-mapper';
import { IpAddress } from '../../core/net/address.js';
import { Endpoint } from '../../core/net/endpoint.js';
import type { GatewayInfo } from './gateway.js';
import type { PortMapClient } from './protocols.js';

/**
 * UPnP-IGD through @achingbrain/nat-port-mapper: SSDP discovery, the device description and
 * AddAnyPortMapping (WANIPConnection:2, which lets the router pick another external port when
 * ours is taken; it returns the one it picked).
 *
 * Library limits we work around or accept (4.0.5):
 * - it discovers only InternetGatewayDevice:2 and speaks only WANIPConnection:2: an IGD v1-only
 *   router is not found (miniupnpd, which the lab runs, serves v2);
 * - its unmap deletes by the *internal* port with an empty protocol; when the router gave another
 *   external port we send DeletePortMapping ourselves through the device it already holds;
 * - it never reports a lease: a grant lasts what we asked (we renew at half of it anyway);
 * - it has no epoch, so a rebooted UPnP router is noticed at the next renewal, not within 60 s.
 * Its own refresh timers are off (autoRefresh: false): renewal is the mapper's.
 */

const DISCOVER_MS = 3000;
const WAN_IP_CONNECTION_2 = 'urn:schemas-upnp-org:service:WANIPConnection:2';

/** The library's device handle inside its gateway object: typed here, checked at run time. */
interface SoapDevice {
  run(service: string, action: string, args: Array<[string, string | number]>, options?: { signal?: AbortSignal }): Promise<unknown>;
}
function soapDevice(g: Gateway): SoapDevice | undefined {
  const d = (g as unknown as { gateway?: unknown }).gateway;
  return d && typeof (d as { run?: unknown }).run === 'function' ? (d as SoapDevice) : undefined;
}

export class UpnpClient implements PortMapClient {
  readonly protocol = 'upnp' as const;
  private gw?: Gateway;

  private async find(info: GatewayInfo): Promise<Gateway | undefined> {
    if (this.gw && this.gw.host === info.gateway.toString()) return this.gw;
    this.gw = undefined;
    // Loaded here, not at startup: the library and its SSDP/XML stack are ~60 modules, which every
    // `wgp2p agent`/`join` start paid for although only a LAN with a UPnP router uses them.
    const { upnpNat } = await import('@achingbrain/nat-port-mapper');
    const client = upnpNat({ autoRefresh: false, description: 'wgp2p' });
    let first: Gateway | undefined;
    try {
      for await (const g of client.findGateways({ signal: AbortSignal.timeout(DISCOVER_MS) })) {
        if (g.family !== 'IPv4') continue;
        // The router that is our gateway, if it answers; else the first IGD on the LAN.
        if (g.host === info.gateway.toString()) {
          first = g;
          break;
        }
        first ??= g;
      }
    } catch {
      // Discovery ends with an abort; what was found is kept.
    }
    this.gw = first;
    return first;
  }

  async map(info: GatewayInfo, internalPort: number, lifetimeS: number) {
    const g = await this.find(info);
    if (!g) return { ok: false as const, problem: 'upnp: no Internet Gateway Device (v2) answered on the LAN', answered: false };
    try {
      const m = await g.map(internalPort, info.local.toString(), { protocol: 'udp', externalPort: internalPort, ttl: lifetimeS * 1000, autoRefresh: false, description: 'wgp2p', signal: AbortSignal.timeout(DISCOVER_MS) });
      const address = IpAddress.tryParse(m.externalHost);
      if (!address || !Number.isInteger(m.externalPort) || m.externalPort < 0 || m.externalPort > 65535) return { ok: false as const, problem: `upnp: router answered an unusable mapping (${String(m.externalHost).slice(0, 60)}:${String(m.externalPort).slice(0, 10)})`, answered: true };
      return { ok: true as const, grant: { protocol: 'upnp' as const, external: Endpoint.of(address, m.externalPort), internalPort, lifetimeS, epochS: null } };
    } catch (err) {
      this.gw = undefined;
      return { ok: false as const, problem: `upnp: ${(err as Error).message.slice(0, 200)}`, answered: true };
    }
  }

  async unmap(info: GatewayInfo, grant: { internalPort: number; external: Endpoint }) {
    const g = await this.find(info);
    if (!g) return;
    const dev = soapDevice(g);
    const signal = AbortSignal.timeout(DISCOVER_MS);
    try {
      if (dev) await dev.run(WAN_IP_CONNECTION_2, 'DeletePortMapping', [['NewRemoteHost', ''], ['NewExternalPort', grant.external.port], ['NewProtocol', 'UDP']], { signal });
      else await g.unmap(grant.internalPort, { signal });
    } catch {
      // Best effort on the way out: the lease runs out by itself.
    }
  }

  async epoch(): Promise<number | null> {
    return null;
  }
}
