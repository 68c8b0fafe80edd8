import { createSocket } from 'node:dgram';
import type { IpAddress } from '../../core/net/address.js';

/**
 * Whether a PCP server answers on the gateway: one ANNOUNCE request (RFC 6887 section 14.1),
 * the smallest PCP exchange. Only doctor's question ("does PCP answer?"); the agent's PCP client
 * (MAP, leases, epochs) is the port-mapping work's codec, which this may give way to.
 */

export const PCP_PORT = 5351;
const OPCODE_ANNOUNCE = 0;

/** RFC 6887 section 7.1: version 2, R=0 and opcode, reserved, lifetime 0, the client's address as an IPv4-mapped IPv6 address. */
export function announceRequest(client: IpAddress): Buffer {
  const b = Buffer.alloc(24);
  b[0] = 2;
  b[1] = OPCODE_ANNOUNCE;
  b.writeUInt16BE(0xffff, 18);
  let v = client.value;
  for (let i = 23; i >= 20; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

export type PcpAnswer = { ok: true; epoch: number } | { ok: false; reason: string };

/** RFC 6887 section 7.2: version 2, R=1 with the request's opcode, result code 0 (SUCCESS); the epoch at bytes 8-11. */
export function parseAnnounceResponse(b: Buffer): PcpAnswer {
  if (b.length < 24 || b.length > 1100 || b.length % 4 !== 0) return { ok: false, reason: `a ${b.length}-byte reply is not a PCP response (24 to 1100 bytes, a multiple of 4)` };
  if (b[0] !== 2) return { ok: false, reason: `version ${b[0]} (PCP is 2; 0 is NAT-PMP)` };
  if ((b[1] & 0x80) === 0 || (b[1] & 0x7f) !== OPCODE_ANNOUNCE) return { ok: false, reason: `opcode byte 0x${b[1].toString(16)} is not an ANNOUNCE response` };
  if (b[3] !== 0) return { ok: false, reason: `result code ${b[3]}` };
  return { ok: true, epoch: b.readUInt32BE(8) };
}

export async function pcpAnnounce(gateway: IpAddress, client: IpAddress, timeoutMs = 1000): Promise<PcpAnswer> {
  const s = createSocket('udp4');
  const timers: NodeJS.Timeout[] = [];
  const req = announceRequest(client);
  const send = () => {
    try {
      s.send(req, PCP_PORT, gateway.toString(), () => undefined);
    } catch {
      // closed meanwhile: the answer is in
    }
  };
  try {
    return await new Promise<PcpAnswer>((resolve) => {
      timers.push(setTimeout(() => resolve({ ok: false, reason: 'no answer' }), timeoutMs));
      s.on('error', (err) => resolve({ ok: false, reason: err.message }));
      s.on('message', (msg, rinfo) => {
        if (rinfo.address === gateway.toString() && rinfo.port === PCP_PORT) resolve(parseAnnounceResponse(msg));
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
