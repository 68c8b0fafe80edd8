import { createSocket } from 'node:dgram';
import type { IpAddress } from '../../core/net/address.js';
import { decodePcpAnnounce, encodePcpAnnounce, PCP_SERVER_PORT } from '../../core/portmap/pcp.js';

/**
 * Whether a PCP server answers on the gateway: one ANNOUNCE request (RFC 6887 section 14.1),
 * the smallest PCP exchange. Only doctor's question ("does PCP answer?"); the agent's own PCP
 * client (MAP, leases, epochs) is agent/port-mapping/pcp.ts, on the same codec.
 */

export type PcpAnswer = { ok: true; epoch: number } | { ok: false; reason: string };

/** A reply in doctor's words, from the shared codec (core/portmap/pcp.ts, tested against RFC 6887's layouts). */
export function announceAnswer(reply: Uint8Array): PcpAnswer {
  const r = decodePcpAnnounce(reply);
  return r.ok ? { ok: true, epoch: r.value.epochS } : { ok: false, reason: r.problem };
}

export async function pcpAnnounce(gateway: IpAddress, client: IpAddress, timeoutMs = 1000): Promise<PcpAnswer> {
  const s = createSocket('udp4');
  const timers: NodeJS.Timeout[] = [];
  const req = encodePcpAnnounce(client);
  const send = () => {
    try {
      s.send(req, PCP_SERVER_PORT, gateway.toString(), () => undefined);
    } catch {
      // closed meanwhile: the answer is in
    }
  };
  try {
    return await new Promise<PcpAnswer>((resolve) => {
      timers.push(setTimeout(() => resolve({ ok: false, reason: 'no answer' }), timeoutMs));
      s.on('error', (err) => resolve({ ok: false, reason: err.message }));
      s.on('message', (msg, rinfo) => {
        if (rinfo.address === gateway.toString() && rinfo.port === PCP_SERVER_PORT) resolve(announceAnswer(msg));
      });
      // RFC 6887 section 8.1.1 retransmits from 3 s; doctor waits a second in all and sends twice.
      send();
      timers.push(setTimeout(send, timeoutMs / 2));
    });
  } finally {
    timers.forEach(clearTimeout);
    s.close();
  }
}
