import { createSocket } from 'node:dgram';
import type { IpAddress } from '../../core/net/address.js';

/**
 * One request to a PCP or NAT-PMP server and the wait for its answer, retransmitted on silence.
 * Replies are accepted only from the server's address and port (RFC 6886 section 3.1); anything
 * else on the socket is dropped unread. A reply the decoder refuses does not end the wait (an
 * off-path or confused sender must not cut a real answer short), but it is what the failure says
 * if nothing better comes.
 *
 * The server is our default gateway, one LAN hop away: 250 ms doubling, four sends (3.75 s in
 * all), instead of the RFCs' schedules (PCP starts at 3 s), which are made for servers further
 * off. A router that has not answered by then is retried by the mapper's own backoff.
 */

export const RETRANSMIT_MS = [250, 500, 1000, 2000] as const;
/** PCP's limit (RFC 6887 section 7); NAT-PMP replies are 16 bytes. */
const MAX_DATAGRAM = 1100;

export type Verdict<T> = { kind: 'done'; value: T } | { kind: 'final'; problem: string } | { kind: 'ignore'; problem: string };
export type Exchanged<T> = { ok: true; value: T } | { ok: false; problem: string; answered: boolean };

export function exchange<T>(o: { local: IpAddress; server: IpAddress; port: number; request: Uint8Array; accept: (buf: Uint8Array) => Verdict<T>; schedule?: readonly number[] }): Promise<Exchanged<T>> {
  const schedule = o.schedule ?? RETRANSMIT_MS;
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    let timer: NodeJS.Timeout | undefined;
    let lastProblem: string | null = null;
    let done = false;
    const finish = (r: Exchanged<T>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      resolve(r);
    };
    sock.on('error', (err) => finish({ ok: false, problem: `cannot talk to ${o.server}:${o.port}: ${err.message}`, answered: false }));
    sock.on('message', (msg, rinfo) => {
      if (rinfo.address !== o.server.toString() || rinfo.port !== o.port || msg.length > MAX_DATAGRAM) return;
      const v = o.accept(new Uint8Array(msg.buffer, msg.byteOffset, msg.length));
      if (v.kind === 'done') finish({ ok: true, value: v.value });
      else if (v.kind === 'final') finish({ ok: false, problem: v.problem, answered: true });
      else lastProblem = v.problem;
    });
    let i = 0;
    const send = () => {
      if (done) return;
      if (i >= schedule.length) return finish({ ok: false, problem: lastProblem ? `router answered, but not usably: ${lastProblem}` : `no answer from ${o.server}:${o.port}`, answered: lastProblem !== null });
      const wait = schedule[i++];
      sock.send(o.request, o.port, o.server.toString(), (err) => {
        if (err) finish({ ok: false, problem: `cannot send to ${o.server}:${o.port}: ${err.message}`, answered: false });
      });
      timer = setTimeout(send, wait);
    };
    sock.bind({ address: o.local.toString(), port: 0 }, send);
  });
}
