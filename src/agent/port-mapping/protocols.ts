import type { PortMappingProtocol } from '../../core/protocol.js';
import type { GatewayInfo } from './gateway.js';
import type { Grant } from './machine.js';

/** One way of asking a router for a mapping (pcp.ts, natpmp.ts, upnp.ts beside this file). */
export interface PortMapClient {
  readonly protocol: PortMappingProtocol;
  /**
   * Map `internalPort` (UDP), asking for `internalPort` outside too. `renew`: the handle of the
   * mapping being renewed (PCP's nonce). `answered`: a router spoke this protocol (a refusal, or
   * a reply that was not usable) rather than staying silent.
   */
  map(gw: GatewayInfo, internalPort: number, lifetimeS: number, renew?: Uint8Array): Promise<{ ok: true; grant: Grant } | { ok: false; problem: string; answered: boolean }>;
  unmap(gw: GatewayInfo, grant: Pick<Grant, 'internalPort' | 'external' | 'handle'>): Promise<void>;
  /** The router's epoch now, seconds; null: no answer, or a protocol without one. */
  epoch(gw: GatewayInfo): Promise<number | null>;
}
