import { randomBytes } from 'node:crypto';
import { decodePcpAnnounce, decodePcpMap, encodePcpAnnounce, encodePcpMap, PCP_NONCE_LEN, PCP_SERVER_PORT, PCP_VERSION } from '../../core/portmap/pcp.js';
import { Endpoint } from '../../core/net/endpoint.js';
import type { GatewayInfo } from './gateway.js';
import type { PortMapClient } from './protocols.js';
import { exchange } from './udp-exchange.js';

/**
 * PCP MAP on the default gateway (codec: core/portmap/pcp.ts). A renewal repeats the mapping's
 * nonce, as RFC 6887 section 11.2 requires; a delete is the same request with lifetime 0. A
 * version-0 answer is a NAT-PMP-only server: final at once, so the next protocol is asked
 * without waiting out the retransmissions.
 */
export const pcpClient: PortMapClient = {
  protocol: 'pcp',
  async map(gw, internalPort, lifetimeS, renew) {
    const nonce = renew?.length === PCP_NONCE_LEN ? renew : new Uint8Array(randomBytes(PCP_NONCE_LEN));
    const r = await exchange({
      local: gw.local,
      server: gw.gateway,
      port: PCP_SERVER_PORT,
      request: encodePcpMap({ client: gw.local, nonce, internalPort, suggestedPort: internalPort, lifetimeS }),
      accept: (buf) => {
        const d = decodePcpMap(buf, { nonce, internalPort });
        if (d.ok) return { kind: 'done', value: d.value };
        // A refusal, or the answer of a server of an older version (NAT-PMP's 0: RFC 6887 section 9),
        // is the router's last word. Anything else may be noise: a datagram whose first byte is
        // no version at all once ended the wait before the real answer came.
        return d.resultCode !== undefined || (d.version !== undefined && d.version < PCP_VERSION) ? { kind: 'final', problem: `pcp: ${d.problem}` } : { kind: 'ignore', problem: `pcp: ${d.problem}` };
      },
    });
    if (!r.ok) return r;
    const v = r.value;
    return { ok: true, grant: { protocol: 'pcp', external: Endpoint.of(v.externalAddress, v.externalPort === 0 ? 0 : v.externalPort), internalPort: v.internalPort, lifetimeS: v.lifetimeS, epochS: v.epochS, handle: nonce } };
  },
  async unmap(gw, grant) {
    if (!grant.handle) return;
    await exchange({
      local: gw.local,
      server: gw.gateway,
      port: PCP_SERVER_PORT,
      request: encodePcpMap({ client: gw.local, nonce: grant.handle, internalPort: grant.internalPort, suggestedPort: 0, lifetimeS: 0 }),
      accept: (buf) => (decodePcpMap(buf, { nonce: grant.handle!, internalPort: grant.internalPort }).ok ? { kind: 'done', value: true } : { kind: 'ignore', problem: 'not the delete reply' }),
      schedule: [250, 500],
    });
  },
  async epoch(gw) {
    const r = await exchange({ local: gw.local, server: gw.gateway, port: PCP_SERVER_PORT, request: encodePcpAnnounce(gw.local), accept: (buf) => {
      const d = decodePcpAnnounce(buf);
      return d.ok ? { kind: 'done', value: d.value.epochS } : d.epochS !== undefined ? { kind: 'done', value: d.epochS } : { kind: 'ignore', problem: d.problem };
    } });
    return r.ok ? r.value : null;
  },
};
