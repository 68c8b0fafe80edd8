import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import { realClock, type Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { IpAddress } from '../core/net/address.js';
import type { Endpoint } from '../core/net/endpoint.js';
import { LogThrottle } from '../core/rate.js';
import { STREAM_WS_PATH } from '../core/stream/messages.js';
import { socketPipe, webSocketPipe, type Pipe } from '../core/stream/pipe.js';
import type { StreamSide } from './relay.js';
import { StreamPorts } from './stream-ports.js';
import type { TicketVerdict } from './ticket-book.js';
import { StreamSession, type CloseReason, type JoinVerdict, type SessionCounters } from './stream-session.js';

/**
 * The relay's stream side (issue 12): WireGuard datagrams of nodes whose networks pass only
 * TCP, over TLS on one port (443 by default), either straight or as WebSocket over that TLS,
 * for middleboxes that pass only HTTPS. Both are TLS first; after the handshake the first byte
 * tells them apart: an HTTP request starts with "G" (GET), a stream frame with its length's
 * high byte, and the first frame (a hello, under 4 KiB) never has one that large.
 *
 * Resources are held only for a while by anyone unauthenticated: every connection has
 * `helloDeadlineMs` (1 s) from its TCP accept to a good hello, TLS and the HTTP upgrade
 * included, and is destroyed then, whatever it is doing (slowloris trickling a TLS record or
 * headers gets nothing longer). There are at most `perSource` connections from one address and
 * `total` in all, authenticated or not.
 */

export interface StreamLimits {
  /** Connections from one source address (a NAT may hide a few nodes behind one). */
  perSource: number;
  total: number;
  /** From the TCP accept to a good hello. */
  helloDeadlineMs: number;
  /** Channels of one stream: one per allocation of the node, and its hub peer. */
  maxChannels: number;
  /** Bytes queued toward one shim before its datagrams are dropped. */
  maxQueued: number;
  /** A shim that reads nothing for this long while its queue is full is closed. */
  stallMs: number;
  /** How long a node's sockets toward the relay outlive its stream, so a reconnect keeps its ports (stream-ports.ts). */
  reconnectGraceMs: number;
}

/** 512 KiB is about 350 full datagrams: more than a TCP window's worth at LAN speeds, and a stalled reader holds no more than that. */
export const DEFAULT_STREAM_LIMITS: StreamLimits = { perSource: 8, total: 1024, helloDeadlineMs: 1000, maxChannels: 64, maxQueued: 512 * 1024, stallMs: 10_000, reconnectGraceMs: 60_000 };

export interface StreamServerOptions {
  /** PEM: the relay's certificate (self-signed and pinned, or the operator's) and key. */
  tls: { cert: string | Buffer; key: string | Buffer };
  /** Nodes' tokens (the hub's stream side); absent on a relay on its own machine, which takes tickets. */
  authenticate?(publicKey: string, token: string): boolean;
  /** The hub's relay tickets (ticket-book.ts): a relay on its own machine. */
  tickets?(id: string, ticket: string, publicKey?: string): TicketVerdict;
  /** Joins over the stream (the hub's side only): see SessionDeps. */
  authenticateJoin?(enrolKey: string, proof: string): JoinVerdict;
  streamSide(id: string, publicKey: string): StreamSide;
  /** The hub's WireGuard endpoint, for the relay inside the hub: nodes' hub peers ride the stream too. */
  hub?: { endpoint: Endpoint; source: IpAddress };
  limits?: Partial<StreamLimits>;
  clock?: Clock;
  log: Logger;
}

export type StreamCloseCounts = Record<CloseReason | 'source-limit' | 'total-limit' | 'tls-failed', number>;

export interface StreamServerStats {
  /** Connections open now, authenticated or not. */
  connections: number;
  /** Nodes with an open stream. */
  nodes: number;
  closes: StreamCloseCounts;
  up: { packets: number; bytes: number };
  down: { packets: number; bytes: number };
  /** Datagrams toward shims dropped because they did not read. */
  dropped: number;
}

interface Accepted {
  readonly raw: Socket;
  readonly source: string;
  readonly at: number;
  session?: StreamSession;
}

export class StreamServer {
  private readonly limits: StreamLimits;
  private readonly clock: Clock;
  private readonly tls: TlsServer;
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  /** By the TCP connection's remote address and port: how a TLS socket finds its accept. */
  private readonly accepted = new Map<string, Accepted>();
  private readonly bySource = new Map<string, number>();
  private readonly nodes = new Map<string, StreamSession>();
  private readonly sessions = new Set<StreamSession>();
  private readonly closes: StreamCloseCounts = { 'auth-timeout': 0, 'bad-auth': 0, 'bad-ticket': 0, garbage: 0, oversized: 0, 'not-owned': 0, replaced: 0, stalled: 0, channels: 0, lifetime: 0, ended: 0, 'source-limit': 0, 'total-limit': 0, 'tls-failed': 0 };
  /** Counters of sessions that are gone, so totals never go down. */
  private readonly gone: SessionCounters = { up: { packets: 0, bytes: 0 }, down: { packets: 0, bytes: 0 }, dropped: 0 };
  private readonly sweeper: NodeJS.Timeout;
  private readonly throttle = new LogThrottle(10_000);
  private readonly ports: StreamPorts;

  constructor(private readonly opts: StreamServerOptions) {
    this.limits = { ...DEFAULT_STREAM_LIMITS, ...opts.limits };
    this.clock = opts.clock ?? realClock;
    this.ports = new StreamPorts(this.clock, this.limits.reconnectGraceMs);
    this.tls = createTlsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2', handshakeTimeout: this.limits.helloDeadlineMs });
    this.tls.maxConnections = this.limits.total;
    this.tls.on('connection', (raw: Socket) => this.onConnection(raw));
    this.tls.on('secureConnection', (s: TLSSocket) => this.onSecure(s));
    this.tls.on('tlsClientError', (_err, s: TLSSocket) => {
      this.closes['tls-failed']++;
      s.destroy();
    });
    this.tls.on('drop', () => this.closes['total-limit']++);
    // HTTP only for the upgrade; anything else gets 404. Its timeouts are the hello deadline's
    // business (that one is checked per connection); these only keep Node's own defaults short.
    this.http = createHttpServer({ headersTimeout: this.limits.helloDeadlineMs, requestTimeout: this.limits.helloDeadlineMs }, (_req, res) => {
      res.writeHead(404, { connection: 'close' }).end();
    });
    this.wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024, perMessageDeflate: false });
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      if (req.url !== STREAM_WS_PATH) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        const a = this.accepted.get(connKey(socket));
        if (!a) return ws.terminate();
        this.startSession(a, webSocketPipe(ws));
      });
    });
    this.sweeper = setInterval(() => this.sweep(), Math.min(1000, this.limits.stallMs / 3));
    this.sweeper.unref();
  }

  /** Resolves with the port (0: one the system chose). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException) =>
        reject(new Error(err.code === 'EACCES' ? `cannot listen on TCP ${host}:${port}: ports below 1024 need root or CAP_NET_BIND_SERVICE; run as root, or choose a port with --tcp-port` : err.code === 'EADDRINUSE' ? `TCP ${host}:${port} is in use (a web server?); choose another with --tcp-port, or turn the stream side off with --no-tcp` : `cannot listen on TCP ${host}:${port}: ${err.message}`));
      this.tls.once('error', fail);
      this.tls.listen(port, host, () => {
        this.tls.off('error', fail);
        this.tls.on('error', (err) => this.opts.log.warn({ err }, 'stream listener'));
        resolve((this.tls.address() as { port: number }).port);
      });
    });
  }

  /** An allocation was released: its channels are closed on whichever stream holds them. */
  released(id: string): void {
    for (const s of this.sessions) s.released(id);
    this.ports.releaseAllocation(id);
  }

  stats(): StreamServerStats {
    const up = { ...this.gone.up };
    const down = { ...this.gone.down };
    let dropped = this.gone.dropped;
    for (const s of this.sessions) {
      up.packets += s.counters.up.packets;
      up.bytes += s.counters.up.bytes;
      down.packets += s.counters.down.packets;
      down.bytes += s.counters.down.bytes;
      dropped += s.counters.dropped;
    }
    return { connections: this.accepted.size, nodes: this.nodes.size, closes: { ...this.closes }, up, down, dropped };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    for (const s of [...this.sessions]) s.close('ended');
    for (const a of this.accepted.values()) a.raw.destroy();
    this.ports.close();
    await new Promise<void>((r) => this.tls.close(() => r()));
  }

  private onConnection(raw: Socket): void {
    const source = raw.remoteAddress ?? '';
    const n = (this.bySource.get(source) ?? 0) + 1;
    if (n > this.limits.perSource) {
      this.closes['source-limit']++;
      raw.destroy();
      return;
    }
    this.bySource.set(source, n);
    // Small datagrams (handshakes, keepalives, TCP ACKs inside the tunnel) must not wait for Nagle.
    raw.setNoDelay(true);
    const key = connKey(raw);
    const a: Accepted = { raw, source, at: this.clock.now() };
    this.accepted.set(key, a);
    const cancel = this.clock.after(this.limits.helloDeadlineMs, () => {
      // A session counts its own timeout; this one is for TLS or HTTP that never finished.
      if (a.session) return;
      this.closes['auth-timeout']++;
      raw.destroy();
    });
    raw.once('close', () => {
      cancel();
      if (this.accepted.get(key) === a) this.accepted.delete(key);
      const left = (this.bySource.get(source) ?? 1) - 1;
      if (left > 0) this.bySource.set(source, left);
      else this.bySource.delete(source);
    });
  }

  private onSecure(s: TLSSocket): void {
    const a = this.accepted.get(connKey(s));
    if (!a) return void s.destroy();
    s.once('data', (first: Buffer) => {
      s.pause();
      s.unshift(first);
      if (first[0] === 0x47 /* "G" */) {
        this.http.emit('connection', s);
        // The HTTP parser reads with a 'data' listener, which does not undo our pause().
        s.resume();
      } else this.startSession(a, socketPipe(s));
    });
  }

  private startSession(a: Accepted, pipe: Pipe): void {
    const left = Math.max(0, this.limits.helloDeadlineMs - (this.clock.now() - a.at));
    const session = new StreamSession(pipe, {
      authenticate: this.opts.authenticate && ((k, t) => this.opts.authenticate!(k, t)),
      tickets: this.opts.tickets && ((id, t, k) => this.opts.tickets!(id, t, k)),
      authenticateJoin: this.opts.authenticateJoin,
      streamSide: (id, k) => this.opts.streamSide(id, k),
      hub: this.opts.hub,
      ports: this.ports,
      opened: (x) => {
        const old = x.publicKey === undefined ? undefined : this.nodes.get(x.publicKey);
        if (old && old !== x) old.close('replaced', 'a newer stream of this node took over');
        if (x.publicKey !== undefined) this.nodes.set(x.publicKey, x);
      },
      closed: (x, reason) => {
        this.sessions.delete(x);
        const k = x.publicKey;
        if (k !== undefined && this.nodes.get(k) === x) this.nodes.delete(k);
        this.closes[reason]++;
        add(this.gone, x.counters);
        if (reason !== 'ended' && reason !== 'replaced') {
          this.throttle.note(this.clock.now(), (suppressed) => this.opts.log.info({ source: a.source, reason, suppressed }, 'stream closed'));
        }
      },
      clock: this.clock,
      helloDeadlineMs: left,
      maxChannels: this.limits.maxChannels,
      maxQueued: this.limits.maxQueued,
      stallMs: this.limits.stallMs,
    });
    a.session = session;
    this.sessions.add(session);
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const s of [...this.sessions]) if (s.stalled(now)) s.close('stalled');
  }
}

function connKey(s: { remoteAddress?: string; remotePort?: number }): string {
  return `${s.remoteAddress ?? ''}|${s.remotePort ?? 0}`;
}

function add(to: SessionCounters, x: SessionCounters): void {
  to.up.packets += x.up.packets;
  to.up.bytes += x.up.bytes;
  to.down.packets += x.down.packets;
  to.down.bytes += x.down.bytes;
  to.dropped += x.dropped;
}
