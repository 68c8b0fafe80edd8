import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { realClock, type Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { IpAddress, type Family } from '../core/net/address.js';
import { Endpoint } from '../core/net/endpoint.js';
import { LogThrottle, TokenBucket } from '../core/rate.js';
import { ATTR, decode, encode, looksLikeStun, METHOD_BINDING, type StunMessage } from '../core/stun/message.js';

/**
 * The hub's STUN responder (RFC 8489 Binding, with RFC 5780's CHANGE-REQUEST change-port and
 * RESPONSE-PORT), on two ports of each public address: what `wgp2p doctor` measures a network
 * with. The hub's WireGuard device sees only WireGuard's own port; this sees any socket, so doctor
 * can ask how the NAT maps toward two ports (mapping), whether an answer from the other port gets
 * in (filtering), and whether a datagram to a port nothing has sent from is let in (a port
 * mapping that forwards, a firewall that is not stateful, a router that takes the port).
 *
 * It tells a sender nothing but its own address, so it authenticates nobody. What it must not
 * become is an amplifier or a reflector toward third parties:
 * - a response is never larger than its request when it goes anywhere but straight back
 *   (change-port, response-port): doctor pads those requests (PADDING) to make room;
 * - RESPONSE-PORT only ever names a port of the request's own source address;
 * - each source address gets a token bucket, and all of them together another, so a flood costs
 *   the hub a bounded share of a core; drops and garbage are counted and logged at most every 10 s.
 */

/** STUN's own port (RFC 8489 section 18.6); the responder also takes the next one. */
export const DEFAULT_STUN_PORT = 3478;

export interface StunResponderOptions {
  /** One address per family to bind; the other port of each is `port + 1`. */
  addresses: readonly IpAddress[];
  port: number;
  log: Logger;
  clock?: Clock;
  /** Requests a second per source address, and saved up (doctor's whole run is about 20). */
  perSource?: { rate: number; burst: number };
  /** Requests a second over all sources. */
  total?: { rate: number; burst: number };
}

export interface StunCounters {
  answered: number;
  malformed: number;
  limited: number;
  /** A redirected response would have been larger than its request. */
  tooSmall: number;
}

/** Sources tracked for rate limits; past this the oldest is forgotten (a spoofed flood cannot grow the map). */
const MAX_SOURCES = 4096;

interface Bound {
  family: Family;
  address: IpAddress;
  primary: Socket;
  other: Socket;
}

export class StunResponder {
  readonly counters: StunCounters = { answered: 0, malformed: 0, limited: 0, tooSmall: 0 };
  private readonly bound: Bound[] = [];
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly all: TokenBucket;
  private readonly dropLog = new LogThrottle(10_000);
  private readonly clock: Clock;

  private constructor(private readonly opts: StunResponderOptions) {
    this.clock = opts.clock ?? realClock;
    const t = opts.total ?? { rate: 2000, burst: 4000 };
    this.all = new TokenBucket(t.rate, t.burst, this.clock.now());
  }

  static async start(opts: StunResponderOptions): Promise<StunResponder> {
    if (opts.port < 1 || opts.port > 65534) throw new Error(`--stun-port ${opts.port}: the responder needs that port and the next one, so give 1-65534`);
    const r = new StunResponder(opts);
    try {
      for (const address of opts.addresses) {
        const primary = await bindUdp(address, opts.port);
        const other = await bindUdp(address, opts.port + 1).catch((err: unknown) => {
          primary.close();
          throw err;
        });
        const b: Bound = { family: address.family, address, primary, other };
        r.bound.push(b);
        primary.on('message', (msg, rinfo) => r.onMessage(b, primary, msg, rinfo));
        other.on('message', (msg, rinfo) => r.onMessage(b, other, msg, rinfo));
      }
    } catch (err) {
      r.close();
      throw err;
    }
    return r;
  }

  /** Where the responder answers, per family: its primary endpoint. */
  endpoints(): Endpoint[] {
    return this.bound.map((b) => Endpoint.of(b.address, this.opts.port));
  }

  close(): void {
    for (const b of this.bound) {
      b.primary.close();
      b.other.close();
    }
    this.bound.length = 0;
  }

  private allowed(source: string): boolean {
    const now = this.clock.now();
    let bucket = this.buckets.get(source);
    if (!bucket) {
      if (this.buckets.size >= MAX_SOURCES) this.buckets.delete(this.buckets.keys().next().value!);
      const p = this.opts.perSource ?? { rate: 20, burst: 60 };
      bucket = new TokenBucket(p.rate, p.burst, now);
      this.buckets.set(source, bucket);
    }
    return bucket.take(1, now) && this.all.take(1, now);
  }

  private drop(kind: 'malformed' | 'limited' | 'tooSmall', detail: string): void {
    this.counters[kind]++;
    this.dropLog.note(this.clock.now(), (suppressed) => this.opts.log.info({ kind, detail, suppressed, counters: this.counters }, 'STUN request dropped'));
  }

  private onMessage(b: Bound, on: Socket, msg: Buffer, rinfo: RemoteInfo): void {
    // Anything else arriving on these ports (scans, stray traffic) is not worth a log line.
    if (!looksLikeStun(msg)) return void this.counters.malformed++;
    // A link-local source carries a zone (fe80::1%eth0): no hub answers those, and parse would throw in a socket handler.
    const ip = IpAddress.tryParse(rinfo.address)?.unmapped();
    if (!ip || rinfo.port === 0) return void this.counters.malformed++;
    const source = Endpoint.of(ip, rinfo.port);
    if (!this.allowed(source.address.toString())) return this.drop('limited', source.address.toString());
    const d = decode(msg);
    if (!d.ok) return this.drop('malformed', d.reason);
    const req = d.message;
    if (req.cls !== 'request' || req.method !== METHOD_BINDING) return this.drop('malformed', `${req.cls} of method ${req.method}`);
    const reply = answer(req, source, b, on === b.primary ? this.opts.port : this.opts.port + 1, this.opts.port);
    let bytes = encode(reply.message);
    // A plain Binding request (20-28 bytes from most clients) gets the mapped address alone: never a reply 3x its size.
    if (!reply.redirected && bytes.length > msg.length) bytes = encode({ ...reply.message, responseOrigin: undefined, otherAddress: undefined });
    if (reply.redirected && bytes.length > msg.length) return this.drop('tooSmall', `${bytes.length}-byte answer to a ${msg.length}-byte request; pad it (PADDING)`);
    const from = reply.fromOther ? (on === b.primary ? b.other : b.primary) : on;
    this.counters.answered++;
    from.send(bytes, reply.to.port, reply.to.address.toString(), () => undefined);
  }
}

/**
 * The answer to a Binding request, as a pure function: what goes where, from which port.
 * Change-IP cannot be honoured (the hub has one address per family): that is answered 420
 * with CHANGE-REQUEST named, as RFC 5780 section 6.1 says for a server without an alternate address.
 */
export function answer(req: StunMessage, source: Endpoint, b: { address: IpAddress }, receivedOn: number, primaryPort: number): { message: StunMessage; to: Endpoint; fromOther: boolean; redirected: boolean } {
  const base = { method: METHOD_BINDING, transactionId: req.transactionId };
  const unknown = [...(req.unknown ?? []), ...(req.changeIp ? [ATTR.CHANGE_REQUEST] : [])];
  if (unknown.length > 0) return { message: { ...base, cls: 'error', error: { code: 420, reason: 'Unknown Attribute' }, unknownAttributes: unknown }, to: source, fromOther: false, redirected: false };
  const fromOther = req.changePort === true;
  const sentFrom = fromOther ? (receivedOn === primaryPort ? primaryPort + 1 : primaryPort) : receivedOn;
  const otherPort = sentFrom === primaryPort ? primaryPort + 1 : primaryPort;
  const to = req.responsePort !== undefined ? source.withPort(req.responsePort) : source;
  return {
    message: { ...base, cls: 'success', mapped: source, responseOrigin: Endpoint.of(b.address, sentFrom), otherAddress: Endpoint.of(b.address, otherPort) },
    to,
    fromOther,
    redirected: fromOther || !to.equals(source),
  };
}

function bindUdp(address: IpAddress, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = address.family === 4 ? createSocket('udp4') : createSocket({ type: 'udp6', ipv6Only: true });
    s.once('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code === 'EADDRINUSE' ? `STUN port ${address}:${port} is in use; choose another with --stun-port or turn it off with --no-stun` : `STUN on ${address}:${port}: ${err.message}`)));
    s.bind(port, address.toString(), () => {
      s.removeAllListeners('error');
      s.on('error', () => undefined);
      resolve(s);
    });
  });
}
