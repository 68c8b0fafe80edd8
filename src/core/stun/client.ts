import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { IpAddress, type Family } from '../net/address.js';
import { Endpoint } from '../net/endpoint.js';
import { decode, encode, METHOD_BINDING, newTransactionId, type StunMessage } from './message.js';

/**
 * One UDP socket that speaks STUN as a client: sends Binding requests and waits for the message
 * that carries a given transaction id, on this socket, from anywhere (a change-port answer comes
 * from the server's other port; a RESPONSE-PORT answer arrives on another of our sockets).
 */

/** RFC 8489 suggests 500 ms; the hub answers in well under a millisecond, and doctor runs many probes. */
const RETRANSMIT_MS = 250;
const TRIES = 3;
/**
 * Every request is padded (RFC 5780 PADDING): the hub answers no request with more bytes than it
 * got, and without room a plain request's answer leaves out OTHER-ADDRESS, which the mapping test needs.
 */
const PADDING = 80;

export interface Received {
  message: StunMessage;
  from: Endpoint;
}

export class StunSocket {
  private readonly waiting = new Map<string, (r: Received) => void>();
  private readonly early = new Map<string, Received>();

  private constructor(private readonly socket: Socket, readonly family: Family) {
    socket.on('message', (buf: Buffer, rinfo: RemoteInfo) => {
      const d = decode(buf);
      const ip = IpAddress.tryParse(rinfo.address)?.unmapped();
      if (!d.ok || !ip || rinfo.port === 0) return;
      const key = d.message.transactionId.toString('hex');
      const r = { message: d.message, from: Endpoint.of(ip, rinfo.port) };
      const w = this.waiting.get(key);
      if (w) w(r);
      else if (this.early.size < 16) this.early.set(key, r);
    });
    socket.on('error', () => undefined);
  }

  /** Port 0: one the system chooses. */
  static bind(family: Family, port = 0): Promise<StunSocket> {
    return new Promise((resolve, reject) => {
      const s = family === 4 ? createSocket('udp4') : createSocket({ type: 'udp6', ipv6Only: true });
      s.once('error', reject);
      s.bind(port, () => {
        s.removeListener('error', reject);
        resolve(new StunSocket(s, family));
      });
    });
  }

  get port(): number {
    return this.socket.address().port;
  }

  static request(opts: { changePort?: boolean; responsePort?: number } = {}): StunMessage {
    return { cls: 'request', method: METHOD_BINDING, transactionId: newTransactionId(randomBytes), ...opts, padding: PADDING };
  }

  send(to: Endpoint, m: StunMessage): void {
    // A datagram that cannot leave (no route in this family) is a measurement, not a failure.
    this.socket.send(encode(m), to.port, to.address.toString(), () => undefined);
  }

  /** The first message with `m`'s transaction id within `ms`, or null. */
  expect(m: StunMessage, ms: number): Promise<Received | null> {
    const key = m.transactionId.toString('hex');
    const got = this.early.get(key);
    if (got) {
      this.early.delete(key);
      return Promise.resolve(got);
    }
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiting.delete(key);
        resolve(null);
      }, ms);
      this.waiting.set(key, (r) => {
        clearTimeout(t);
        this.waiting.delete(key);
        resolve(r);
      });
    });
  }

  /**
   * Sends `m` to `to` up to `tries` times until its answer arrives at `on` (this socket unless
   * told), RETRANSMIT_MS apart. The same transaction id every time, as RFC 8489 retransmits.
   */
  async transact(to: Endpoint, m: StunMessage, opts: { on?: StunSocket; tries?: number } = {}): Promise<Received | null> {
    const on = opts.on ?? this;
    const answer = on.expect(m, RETRANSMIT_MS * (opts.tries ?? TRIES));
    let done = false;
    void answer.then(() => (done = true));
    for (let i = 0; i < (opts.tries ?? TRIES) && !done; i++) {
      this.send(to, m);
      await Promise.race([answer, new Promise((r) => setTimeout(r, RETRANSMIT_MS))]);
    }
    return answer;
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}
