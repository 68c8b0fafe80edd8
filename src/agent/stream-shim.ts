import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { realClock, type Cancel, type Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { IpAddress } from '../core/net/address.js';
import { Endpoint, type HostPort } from '../core/net/endpoint.js';
import { connectStream, proxyFor, StreamConnectError, type StreamTransport, type StreamTrust } from '../core/stream/connect.js';
import { describeProblem, FrameBatcher, FrameDecoder, type Frame } from '../core/stream/framing.js';
import { decodeRelayStreamMessage, STREAM_VERSION, type ShimMessage, type StreamTarget } from '../core/stream/messages.js';
import type { Pipe } from '../core/stream/pipe.js';

/**
 * The agent's end of the stream transport (issue 12). WireGuard is not changed: each peer that
 * rides the stream (the hub peer, a relayed pair's peer) is pointed at a local UDP port of this
 * shim, one port per channel; the shim carries what WireGuard sends there over one TLS (or
 * WebSocket over TLS) connection to a relay, on TCP 443, and sends what comes back to
 * WireGuard from that same port, so WireGuard sees each peer at one fixed endpoint throughout.
 *
 * The local ports stay bound while the connection comes and goes: a reconnect changes nothing
 * WireGuard can see, and the channels are opened again on the new connection.
 *
 * Phases: idle -> connecting -> hello (sent, waiting for welcome) -> up; any failure -> backoff
 * (250 ms doubling to 10 s; a refusal that retrying does not fix, such as a wrong certificate,
 * waits the longest) -> connecting; stop() from any of them -> stopped.
 */

export type ShimPhase =
  | { readonly kind: 'idle' }
  | { readonly kind: 'connecting'; readonly attempt: number }
  | { readonly kind: 'hello'; readonly attempt: number }
  | { readonly kind: 'up'; readonly since: number }
  | { readonly kind: 'backoff'; readonly attempt: number; readonly reason: string; readonly retryInMs: number; readonly permanent: boolean }
  | { readonly kind: 'stopped' };

export type ShimEvent =
  | { readonly kind: 'start' }
  | { readonly kind: 'connected' }
  | { readonly kind: 'welcome'; readonly now: number }
  | { readonly kind: 'failed'; readonly reason: string; readonly permanent: boolean }
  | { readonly kind: 'retry' }
  | { readonly kind: 'stop' };

export const BACKOFF_MIN_MS = 250;
export const BACKOFF_MAX_MS = 10_000;

/** The pure transition of the shim's connection. */
export function shimStep(p: ShimPhase, e: ShimEvent): ShimPhase {
  if (p.kind === 'stopped') return p;
  switch (e.kind) {
    case 'stop':
      return { kind: 'stopped' };
    case 'start':
      return p.kind === 'idle' ? { kind: 'connecting', attempt: 0 } : p;
    case 'connected':
      return p.kind === 'connecting' ? { kind: 'hello', attempt: p.attempt } : p;
    case 'welcome':
      return p.kind === 'hello' ? { kind: 'up', since: e.now } : p;
    case 'failed': {
      if (p.kind === 'idle' || p.kind === 'backoff') return p;
      // A connection that was up starts the backoff afresh: one drop is not a pattern.
      const attempt = p.kind === 'up' ? 0 : p.attempt;
      const retryInMs = e.permanent ? BACKOFF_MAX_MS : Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
      return { kind: 'backoff', attempt: attempt + 1, reason: e.reason, retryInMs, permanent: e.permanent };
    }
    case 'retry':
      return p.kind === 'backoff' ? { kind: 'connecting', attempt: p.attempt } : p;
  }
}

export interface StreamShimOptions {
  relay: HostPort;
  trust: StreamTrust;
  transport: StreamTransport;
  /** The proxy to CONNECT through; default: from the environment (proxyFor), `null` for none. */
  proxy?: URL | null;
  /**
   * The node's credentials: its WireGuard public key and its token (NAME.agent.json); or, for a
   * device that is joining, the join code's one-time public key and its proof (join-proof.ts).
   */
  credentials: { publicKey: string; token: string } | JoinCredentials | TicketCredentials;
  /** Where the local WireGuard listens: the only source the shim's ports take datagrams from, and where it sends what comes back. */
  wireguard: Endpoint;
  clock?: Clock;
  log: Logger;
  /** Bytes queued toward the relay before datagrams are dropped (default 512 KiB). */
  maxQueued?: number;
  connectTimeoutMs?: number;
  /** The phase changed (for status: the transport and its reason). */
  onPhase?(p: ShimPhase): void;
  /** The relay closed or refused a channel (its allocation was released, say). */
  onChannelClosed?(to: StreamTarget, reason: string): void;
}

interface Channel {
  readonly id: number;
  readonly to: StreamTarget;
  readonly socket: Socket;
  readonly local: Endpoint;
  /**
   * The relay closed or refused the channel on the current connection. Datagrams go as soon as
   * `open` is sent (the relay reads in order, so it has the channel by then): waiting for
   * `opened` would lose a handshake initiation, and cost WireGuard's 5 s retry.
   */
  refused: boolean;
  /** The hub's ticket for the allocation (ticket mode): a secret, sent in `open` only. */
  readonly ticket?: string;
}

export interface ShimCounters {
  /** From WireGuard to the relay. */
  up: { packets: number; bytes: number };
  down: { packets: number; bytes: number };
  /** From WireGuard while the stream was not up, or its queue full. */
  dropped: number;
}

/** What `wgp2p join` presents: such a stream carries only the join tunnel's hub peer. */
export interface JoinCredentials {
  readonly kind: 'join';
  readonly enrolKey: string;
  readonly proof: string;
}

/**
 * To a relay on its own machine (relay-streams.ts): no hello; each channel is opened with the
 * hub's ticket for this node's side of its allocation (core/stream/ticket.ts).
 */
export interface TicketCredentials {
  readonly kind: 'tickets';
}

const targetKey = (t: StreamTarget) => (t.kind === 'hub' ? 'hub' : `allocation:${t.id}`);

export class StreamShim {
  private phase: ShimPhase = { kind: 'idle' };
  private readonly clock: Clock;
  private readonly channels = new Map<string, Channel>();
  private readonly byId = new Map<number, Channel>();
  private nextId = 0;
  private pipe?: Pipe;
  private batcher?: FrameBatcher;
  private retry?: Cancel;
  private readonly wgText: string;
  private readonly ticketMode: boolean;
  private upWaiters: (() => void)[] = [];
  readonly counters: ShimCounters = { up: { packets: 0, bytes: 0 }, down: { packets: 0, bytes: 0 }, dropped: 0 };

  constructor(private readonly opts: StreamShimOptions) {
    this.clock = opts.clock ?? realClock;
    this.wgText = opts.wireguard.address.toString();
    this.ticketMode = 'kind' in opts.credentials && opts.credentials.kind === 'tickets';
  }

  /**
   * Resolves once the stream is up (true), or after `timeoutMs` (false). A peer pointed at a
   * shim that is still connecting loses its handshake initiation, and WireGuard retries only
   * after 5 s: a new relay stream is worth waiting for, briefly.
   */
  whenUp(timeoutMs: number): Promise<boolean> {
    if (this.phase.kind === 'up') return Promise.resolve(true);
    return new Promise((resolve) => {
      let done = false;
      const cancel = this.clock.after(timeoutMs, () => {
        if (done) return;
        done = true;
        resolve(false);
      });
      this.upWaiters.push(() => {
        if (done) return;
        done = true;
        cancel();
        resolve(true);
      });
    });
  }

  get state(): ShimPhase {
    return this.phase;
  }

  start(): void {
    this.move({ kind: 'start' });
    void this.connect();
  }

  stop(): void {
    this.move({ kind: 'stop' });
    this.retry?.();
    this.teardown();
    for (const ch of this.channels.values()) ch.socket.close();
    this.channels.clear();
    this.byId.clear();
  }

  /**
   * The local endpoint for `to`: point the WireGuard peer at it. Opened on the relay now if the
   * stream is up, else once it is; the same target gives the same endpoint.
   */
  async open(to: StreamTarget, ticket?: string): Promise<Endpoint> {
    const known = this.channels.get(targetKey(to));
    if (known) return known.local;
    if (this.byId.size >= 0xffff) throw new Error('no free stream channel');
    while (this.byId.has(this.nextId)) this.nextId = (this.nextId + 1) & 0xffff;
    const id = this.nextId;
    this.nextId = (this.nextId + 1) & 0xffff;
    const loopback = IpAddress.parse(this.opts.wireguard.address.family === 6 ? '::1' : '127.0.0.1');
    const socket = createSocket({ type: loopback.family === 6 ? 'udp6' : 'udp4', recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, loopback.toString(), () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('error', () => undefined);
    const ch: Channel = { id, to, socket, local: Endpoint.of(loopback, socket.address().port), refused: false, ...(ticket ? { ticket } : {}) };
    socket.on('message', (buf, rinfo) => this.fromWireGuard(ch, buf, rinfo));
    this.channels.set(targetKey(to), ch);
    this.byId.set(id, ch);
    // With tickets the opens go as soon as the connection is (they are its credential).
    if (this.phase.kind === 'up' || (this.ticketMode && this.phase.kind === 'hello')) this.sendOpen(ch);
    return ch.local;
  }

  /** The peer left the stream: its port is closed. */
  close(to: StreamTarget): void {
    const ch = this.channels.get(targetKey(to));
    if (!ch) return;
    this.channels.delete(targetKey(to));
    this.byId.delete(ch.id);
    ch.socket.close();
    if (this.phase.kind === 'up') this.send({ type: 'close', channel: ch.id });
  }

  private move(e: ShimEvent): void {
    const next = shimStep(this.phase, e);
    if (next === this.phase) return;
    this.phase = next;
    if (next.kind === 'up' || next.kind === 'stopped') {
      const waiters = this.upWaiters;
      this.upWaiters = [];
      for (const w of waiters) w();
    }
    this.opts.onPhase?.(next);
  }

  private async connect(): Promise<void> {
    if (this.phase.kind !== 'connecting') return;
    let pipe: Pipe;
    try {
      const proxy = this.opts.proxy === undefined ? proxyFor(this.opts.relay) : (this.opts.proxy ?? undefined);
      pipe = await connectStream({ relay: this.opts.relay, trust: this.opts.trust, transport: this.opts.transport, proxy, timeoutMs: this.opts.connectTimeoutMs });
    } catch (err) {
      this.fail((err as Error).message, err instanceof StreamConnectError && err.permanent);
      return;
    }
    if (this.phase.kind !== 'connecting') return void pipe.destroy();
    this.pipe = pipe;
    const batcher = new FrameBatcher(pipe, { maxQueued: this.opts.maxQueued });
    this.batcher = batcher;
    const decoder = new FrameDecoder();
    pipe.start(
      (chunk) => {
        if (this.pipe !== pipe) return;
        const problem = decoder.push(chunk, (f) => this.fromRelay(f));
        if (problem) this.fail(`the relay sent ${describeProblem(problem)}`, false);
      },
      (err) => {
        if (this.pipe === pipe) this.fail(err ? `the stream failed: ${err.message}` : 'the relay closed the stream', false);
      },
    );
    this.move({ kind: 'connected' });
    const c = this.opts.credentials;
    if (!('kind' in c)) this.send({ type: 'hello', v: STREAM_VERSION, publicKey: c.publicKey, token: c.token });
    else if (c.kind === 'join') this.send({ type: 'join', v: STREAM_VERSION, enrolKey: c.enrolKey, proof: c.proof });
    else for (const ch of this.byId.values()) this.sendOpen(ch);
  }

  private fail(reason: string, permanent: boolean): void {
    const was = this.phase;
    if (was.kind === 'backoff' || was.kind === 'stopped' || was.kind === 'idle') return;
    this.teardown();
    this.move({ kind: 'failed', reason, permanent });
    const p = this.phase;
    if (p.kind !== 'backoff') return;
    // Loud once per outage (the first failed attempt after being up, or the very first), quiet while it lasts.
    const loud = was.kind === 'up' || p.attempt === 1;
    this.opts.log[loud ? 'warn' : 'debug']({ relay: this.opts.relay.toString(), reason, retryInMs: p.retryInMs }, 'stream to the relay is down');
    this.retry = this.clock.after(p.retryInMs, () => {
      this.move({ kind: 'retry' });
      void this.connect();
    });
  }

  private teardown(): void {
    const pipe = this.pipe;
    this.pipe = undefined;
    this.batcher?.close();
    this.batcher = undefined;
    pipe?.destroy();
    for (const ch of this.channels.values()) ch.refused = false;
  }

  private sendOpen(ch: Channel): void {
    this.send({ type: 'open', channel: ch.id, to: ch.to, ...(ch.ticket ? { ticket: ch.ticket } : {}) });
  }

  private send(m: ShimMessage): void {
    this.batcher?.control(JSON.stringify(m));
  }

  private fromRelay(f: Frame): void {
    if (f.type === 'data') {
      const ch = this.byId.get(f.channel);
      if (!ch || this.phase.kind !== 'up') return;
      this.counters.down.packets++;
      this.counters.down.bytes += f.datagram.length;
      ch.socket.send(f.datagram, this.opts.wireguard.port, this.wgText);
      return;
    }
    let m;
    try {
      m = decodeRelayStreamMessage(f.text);
    } catch (err) {
      return this.fail((err as Error).message, false);
    }
    switch (m.type) {
      case 'welcome':
        this.move({ kind: 'welcome', now: this.clock.now() });
        this.opts.log.info({ relay: this.opts.relay.toString(), transport: this.opts.transport }, 'stream to the relay is up');
        // With tickets every channel was opened already: its open was the credential.
        if (!this.ticketMode) for (const ch of this.byId.values()) this.sendOpen(ch);
        return;
      case 'opened':
        return;
      case 'closed': {
        const ch = this.byId.get(m.channel);
        if (!ch) return;
        ch.refused = true;
        this.opts.log.info({ channel: targetKey(ch.to), reason: m.reason }, 'the relay closed a stream channel');
        this.opts.onChannelClosed?.(ch.to, m.reason);
        return;
      }
      case 'error':
        // The relay closes the stream after this; a refused hello will be refused again.
        return this.fail(`the relay refused: ${m.reason}`, /hello|token|public key|join|ticket/.test(m.reason));
    }
  }

  private fromWireGuard(ch: Channel, buf: Buffer, rinfo: RemoteInfo): void {
    // Only the local WireGuard may send through the shim (another local process must not reach the relay as this node).
    if (rinfo.port !== this.opts.wireguard.port || rinfo.address !== this.wgText) return;
    if (this.phase.kind !== 'up' || ch.refused || !this.batcher?.data(ch.id, buf)) {
      this.counters.dropped++;
      return;
    }
    this.counters.up.packets++;
    this.counters.up.bytes += buf.length;
  }
}
