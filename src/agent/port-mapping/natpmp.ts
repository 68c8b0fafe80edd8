import { Endpoint } from '../../core/net/endpoint.js';
import { decodeNatpmpExternal, decodeNatpmpMapUdp, encodeNatpmpExternal, encodeNatpmpMapUdp, NATPMP_SERVER_PORT } from '../../core/portmap/natpmp.js';
import { PCP_VERSION } from '../../core/portmap/pcp.js';
import type { GatewayInfo } from './gateway.js';
import type { PortMapClient } from './protocols.js';
import { exchange } from './udp-exchange.js';

/**
 * NAT-PMP on the default gateway (codec: core/portmap/natpmp.ts). Its map reply has no address,
 * so the external address is asked first; both replies carry the epoch.
 */
export const natpmpClient: PortMapClient = {
  protocol: 'natpmp',
  async map(gw, internalPort, lifetimeS) {
    const ext = await exchange({
      local: gw.local,
      server: gw.gateway,
      port: NATPMP_SERVER_PORT,
      request: encodeNatpmpExternal(),
      accept: (buf) => {
        const d = decodeNatpmpExternal(buf);
        if (d.ok) return { kind: 'done', value: d.value };
        // A PCP-only server answers with its own version (2, RFC 6887 section 9): final. Any
        // other first byte is noise, not an answer.
        return d.resultCode !== undefined || d.version === PCP_VERSION ? { kind: 'final', problem: `natpmp: ${d.problem}` } : { kind: 'ignore', problem: `natpmp: ${d.problem}` };
      },
    });
    if (!ext.ok) return ext;
    const r = await exchange({
      local: gw.local,
      server: gw.gateway,
      port: NATPMP_SERVER_PORT,
      request: encodeNatpmpMapUdp({ internalPort, suggestedPort: internalPort, lifetimeS }),
      accept: (buf) => {
        const d = decodeNatpmpMapUdp(buf, { internalPort });
        if (d.ok) return { kind: 'done', value: d.value };
        return d.resultCode !== undefined ? { kind: 'final', problem: `natpmp: ${d.problem}` } : { kind: 'ignore', problem: `natpmp: ${d.problem}` };
      },
    });
    if (!r.ok) return { ...r, answered: true };
    return { ok: true, grant: { protocol: 'natpmp', external: Endpoint.of(ext.value.externalAddress, r.value.externalPort), internalPort: r.value.internalPort, lifetimeS: r.value.lifetimeS, epochS: r.value.epochS } };
  },
  async unmap(gw, grant) {
    await exchange({
      local: gw.local,
      server: gw.gateway,
      port: NATPMP_SERVER_PORT,
      request: encodeNatpmpMapUdp({ internalPort: grant.internalPort, suggestedPort: 0, lifetimeS: 0 }),
      accept: (buf) => (decodeNatpmpMapUdp(buf, { internalPort: grant.internalPort }).ok ? { kind: 'done', value: true } : { kind: 'ignore', problem: 'not the delete reply' }),
      schedule: [250, 500],
    });
  },
  async epoch(gw: GatewayInfo) {
    const r = await exchange({ local: gw.local, server: gw.gateway, port: NATPMP_SERVER_PORT, request: encodeNatpmpExternal(), accept: (buf) => {
      const d = decodeNatpmpExternal(buf);
      return d.ok ? { kind: 'done', value: d.value.epochS } : { kind: 'ignore', problem: d.problem };
    } });
    return r.ok ? r.value : null;
  },
};
