import type { RemoteInfo, Socket } from 'node:dgram';
import type { Clock, Cancel } from '../core/clock.js';
import type { IpAddress } from '../core/net/address.js';
import type { Endpoint } from '../core/net/endpoint.js';
import { describeProblem, FrameBatcher, FrameDecoder, type Frame } from '../core/stream/framing.js';
import { decodeShimMessage, type RelayStreamMessage, type ShimMessage, type StreamTarget } from '../core/stream/messages.js';
import type { Pipe } from '../core/stream/pipe.js';
import type { StreamSide } from './relay.js';
import type { StreamPorts } from './stream-ports.js';
import type { TicketVerdict } from './ticket-book.js';

/**
 * One stream from a node's shim, from the first byte to the close. Its phases are explicit:
 *
 *   hello-wait --hello, credentials good--> open --pipe ends / misbehaves--> closed
 *        \--deadline, bad hello, garbage------------------------------------^
 *
 * In `hello-wait` nothing is forwarded and nothing but one hello is read. In `open`, each
 * channel the shim opens is one of the node's own allocation sides (or its hub peer): a UDP
 * socket on the side's loopback node IP that exchanges datagrams with the relay's port of that
 * side, so the relay's per-pair rules (relay.ts) apply to it as to any node, unchanged. A
 * channel only ever sends to, and only accepts from, that one relay port.
 *
 * Toward the shim every datagram goes through a bounded batcher: a shim that stops reading
 * loses its own datagrams (counted), and the UDP sockets of every other pair never wait.
 */

export type CloseReason =
  /** No valid hello within the deadline (counted from the TCP accept, TLS included). */
  | 'auth-timeout'
  /** A hello with credentials of no node, or not a hello first. */
  | 'bad-auth'
  /** Bytes that are not frames of this protocol, or a control message that fails its schema. */
  | 'garbage'
  | 'oversized'
  /** An open for an allocation the node is not a side of, or a DATA frame for a channel it never opened. */
  | 'not-owned'
  /** A relay ticket that is wrong (another allocation's or side's, or made up), expired, or missing where one is needed. */
  | 'bad-ticket'
  /** A newer stream of the same node took its place. */
  | 'replaced'
  /** The shim did not read for longer than the stall limit while datagrams were dropped for it. */
  | 'stalled'
  /** Too many channels on one stream. */
  | 'channels'
  /** A join stream outlived the join it carries (JoinVerdict.lifetimeMs). */
  | 'lifetime'
  /** The peer closed, or the relay shut down. */
  | 'ended';

/**
 * Who a stream speaks for: a node (hello: its key and token), or a device joining with a code
 * (join: the code's one-time key and its proof), which may open its hub peer and nothing else,
 * or a node on a relay on its own machine (ticket: no hello; each open carries the hub's ticket
 * for that allocation's side, and the first one says which node the stream speaks for).
 */
export type StreamScope = 'node' | 'join' | 'ticket';

/** The hub's word on a join stream's credential: how long the stream may live, or why not, in words for the device. */
export type JoinVerdict = { readonly ok: true; readonly lifetimeMs: number } | { readonly ok: false; readonly reason: string };

export type SessionPhase =
  | { readonly kind: 'hello-wait' }
  | { readonly kind: 'open'; readonly publicKey: string; readonly scope: StreamScope }
  | { readonly kind: 'closed'; readonly reason: CloseReason };

export type SessionEvent =
  | { readonly kind: 'authenticated'; readonly publicKey: string; readonly scope: StreamScope }
  | { readonly kind: 'close'; readonly reason: CloseReason };

/** The phase after `e`: a closed session stays closed with its first reason; only hello-wait can authenticate. */
export function sessionStep(p: SessionPhase, e: SessionEvent): SessionPhase {
  if (p.kind === 'closed') return p;
  if (e.kind === 'close') return { kind: 'closed', reason: e.reason };
  return p.kind === 'hello-wait' ? { kind: 'open', publicKey: e.publicKey, scope: e.scope } : p;
}

export interface SessionDeps {
  /** Whether `token` is the token of the node with `publicKey` (constant time is the implementation's duty); absent: no hellos (a relay on its own machine). */
  authenticate?(publicKey: string, token: string): boolean;
  /** Which side of allocation `id` the hub's ticket is for (relay/ticket-book.ts); absent: no tickets (the hub's own stream side). */
  tickets?(id: string, ticket: string, publicKey?: string): TicketVerdict;
  /** Whether a join code's one-time key and proof may carry a join now; absent: this relay takes no joins (only the hub does). */
  authenticateJoin?(enrolKey: string, proof: string): JoinVerdict;
  /** Where the node's side of allocation `id` sends (Relay#streamSide). */
  streamSide(id: string, publicKey: string): StreamSide;
  /** The hub's WireGuard endpoint and the loopback address to send to it from; absent on a relay outside the hub. */
  hub?: { endpoint: Endpoint; source: IpAddress };
  /** The nodes' sockets toward the relay's ports, kept across reconnects. */
  ports: StreamPorts;
  /** The session is open: the server makes it the node's only one. */
  opened(s: StreamSession): void;
  closed(s: StreamSession, reason: CloseReason): void;
  clock: Clock;
  /** Time left for the hello, counted from the TCP accept. */
  helloDeadlineMs: number;
  maxChannels: number;
  maxQueued: number;
  /** A shim that took nothing of its queue for this long is closed ('stalled'). */
  stallMs: number;
}

interface Channel {
  readonly id: number;
  readonly to: StreamTarget;
  readonly socket: Socket;
  readonly dest: Endpoint;
  /** `dest` as the socket reports a source, compared per datagram. */
  readonly destText: string;
}

export interface SessionCounters {
  /** Datagrams and bytes from the shim, forwarded to the relay's ports. */
  up: { packets: number; bytes: number };
  down: { packets: number; bytes: number };
  /** Datagrams toward the shim dropped because it was not reading. */
  dropped: number;
}

export class StreamSession {
  phase: SessionPhase = { kind: 'hello-wait' };
  private readonly decoder = new FrameDecoder();
  private readonly batcher: FrameBatcher;
  private readonly channels = new Map<number, Channel>();
  /**
   * Channels the relay closed or refused on this stream: the shim may have sent datagrams on
   * them before it read why, so those are dropped, not taken as a channel it never opened.
   */
  private readonly ended = new Set<number>();
  private deadline?: Cancel;
  private stallSince?: number;
  private flushedSeen = 0;
  private node?: string;
  readonly counters: SessionCounters = { up: { packets: 0, bytes: 0 }, down: { packets: 0, bytes: 0 }, dropped: 0 };

  constructor(
    private readonly pipe: Pipe,
    private readonly deps: SessionDeps,
  ) {
    this.batcher = new FrameBatcher(pipe, { maxQueued: deps.maxQueued });
    this.deadline = deps.clock.after(deps.helloDeadlineMs, () => this.close('auth-timeout'));
    pipe.start(
      (chunk) => this.onChunk(chunk),
      () => this.close('ended'),
    );
  }

  /** The node's key once authenticated (kept after the close, so the server can forget the node). */
  get publicKey(): string | undefined {
    return this.node;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  /**
   * Whether the shim has taken nothing for longer than the stall limit while bytes wait for it
   * (the server's sweep asks, once a second). A slow reader that takes anything is not stalled:
   * it only loses what does not fit its queue.
   */
  stalled(now: number): boolean {
    const flushed = this.pipe.flushed;
    if (this.pipe.queued === 0 || flushed !== this.flushedSeen) {
      this.flushedSeen = flushed;
      this.stallSince = undefined;
      return false;
    }
    this.stallSince ??= now;
    return now - this.stallSince > this.deps.stallMs;
  }

  /** An allocation was released: its channels on this stream are closed and the shim is told. */
  released(id: string): void {
    for (const ch of [...this.channels.values()]) {
      if (ch.to.kind === 'allocation' && ch.to.id === id) {
        this.dropChannel(ch);
        this.refuse(ch.id, `allocation ${id} was released`);
      }
    }
  }

  close(reason: CloseReason, message?: string): void {
    const was = this.phase;
    this.phase = sessionStep(this.phase, { kind: 'close', reason });
    if (was.kind === 'closed') return;
    this.deadline?.();
    for (const ch of this.channels.values()) if (this.node) this.deps.ports.park(this.node, ch.to, this);
    this.channels.clear();
    if (message && reason !== 'ended') {
      this.batcher.control(JSON.stringify({ type: 'error', reason: message } satisfies RelayStreamMessage));
      this.batcher.flush();
      this.batcher.close();
      this.pipe.end();
    } else {
      this.batcher.close();
      this.pipe.destroy();
    }
    this.deps.closed(this, reason);
  }

  private send(m: RelayStreamMessage): void {
    this.batcher.control(JSON.stringify(m));
  }

  private onChunk(chunk: Buffer): void {
    if (this.phase.kind === 'closed') return;
    const problem = this.decoder.push(chunk, (f) => this.onFrame(f));
    if (problem && (this.phase as SessionPhase).kind !== 'closed') this.close(problem.kind, `${describeProblem(problem)}: not a frame of the wgp2p stream protocol`);
  }

  private onFrame(f: Frame): void {
    const phase = this.phase;
    if (phase.kind === 'closed') return;
    if (f.type === 'data') {
      if (phase.kind !== 'open') return this.close('bad-auth', 'send hello first');
      const ch = this.channels.get(f.channel);
      if (!ch) return this.ended.has(f.channel) ? undefined : this.close('not-owned', `channel ${f.channel} is not open`);
      this.counters.up.packets++;
      this.counters.up.bytes += f.datagram.length;
      ch.socket.send(f.datagram, ch.dest.port, ch.destText);
      return;
    }
    let m: ShimMessage;
    try {
      m = decodeShimMessage(f.text);
    } catch (err) {
      return this.close(phase.kind === 'open' ? 'garbage' : 'bad-auth', (err as Error).message);
    }
    if (phase.kind === 'hello-wait') {
      if (m.type === 'join') return this.join(phase, m.enrolKey, m.proof);
      if (m.type === 'open' && this.deps.tickets) return this.firstTicket(phase, m.channel, m.to, m.ticket);
      if (m.type !== 'hello') return this.close('bad-auth', this.deps.tickets ? 'the first message must be an open with the hub\'s ticket' : 'the first message must be hello');
      if (!this.deps.authenticate) return this.close('bad-auth', 'this relay runs on its own and knows no node tokens: open each allocation with the ticket from the hub\'s path command');
      if (!this.deps.authenticate(m.publicKey, m.token)) return this.close('bad-auth', 'no node has this public key and token; check NAME.agent.json, or run "wgp2p node add" again');
      this.deadline?.();
      this.deadline = undefined;
      this.welcome(phase, m.publicKey, 'node');
      return;
    }
    switch (m.type) {
      case 'hello':
      case 'join':
        return this.close('garbage', `${m.type} after the stream was opened`);
      case 'open':
        if (phase.scope === 'ticket' && !this.ticketFor(phase.publicKey, m.channel, m.to, m.ticket)) return;
        return this.open(phase, m.channel, m.to);
      case 'close': {
        const ch = this.channels.get(m.channel);
        if (ch) this.dropChannel(ch);
        this.ended.add(m.channel);
        return;
      }
    }
  }

  private welcome(phase: SessionPhase, publicKey: string, scope: StreamScope): void {
    this.phase = sessionStep(phase, { kind: 'authenticated', publicKey, scope });
    this.node = publicKey;
    this.deps.opened(this);
    this.send({ type: 'welcome' });
  }

  /** The first open on a relay with tickets: its ticket says which node this stream is. */
  private firstTicket(phase: SessionPhase, channel: number, to: StreamTarget, ticket: string | undefined): void {
    if (to.kind !== 'allocation' || ticket === undefined) return this.close('bad-ticket', 'this relay opens a channel only for an allocation, with the hub\'s ticket for it');
    const v = this.deps.tickets!(to.id, ticket);
    // An allocation that is gone is no bad credential (the shim may not have heard yet): the
    // channel is refused, and the hello deadline still runs for a stream that proved nothing.
    if (!v.ok && v.reason === 'unknown') return this.refuse(channel, ticketRefusal(to.id, v.reason));
    if (!v.ok) return this.close('bad-ticket', ticketRefusal(to.id, v.reason));
    this.deadline?.();
    this.deadline = undefined;
    this.welcome(phase, v.publicKey, 'ticket');
    const now = this.phase;
    if (now.kind === 'open') this.open(now, channel, to);
  }

  /** A later open on a ticket stream: its own ticket, for this node's side. False: refused, or the stream is closed. */
  private ticketFor(publicKey: string, channel: number, to: StreamTarget, ticket: string | undefined): boolean {
    if (to.kind !== 'allocation' || ticket === undefined) {
      this.close('bad-ticket', 'this relay opens a channel only for an allocation, with the hub\'s ticket for it');
      return false;
    }
    const v = this.deps.tickets!(to.id, ticket, publicKey);
    if (v.ok) return true;
    if (v.reason === 'unknown') {
      this.refuse(channel, ticketRefusal(to.id, v.reason));
      return false;
    }
    this.close('bad-ticket', ticketRefusal(to.id, v.reason));
    return false;
  }

  /** A join stream lives for the join only: the hub's verdict bounds it, whatever the device does. */
  private join(phase: SessionPhase, enrolKey: string, proof: string): void {
    const v: JoinVerdict = this.deps.authenticateJoin?.(enrolKey, proof) ?? { ok: false, reason: 'this relay takes no joins; a join goes to the hub\'s own stream side (the join code names it)' };
    if (!v.ok) return this.close('bad-auth', v.reason);
    this.deadline?.();
    this.deadline = this.deps.clock.after(v.lifetimeMs, () => this.close('lifetime', 'the join this stream carried is over (the code is used or expired); the agent connects with its own key and token'));
    this.welcome(phase, enrolKey, 'join');
  }

  private open(phase: Extract<SessionPhase, { kind: 'open' }>, id: number, to: StreamTarget): void {
    const publicKey = phase.publicKey;
    if (phase.scope === 'join' && to.kind !== 'hub') return this.close('not-owned', 'a join stream carries only the join tunnel to the hub, no relay allocation');
    if (this.channels.has(id)) return this.close('garbage', `channel ${id} is already open`);
    if (this.channels.size >= this.deps.maxChannels) return this.close('channels', `at most ${this.deps.maxChannels} channels on one stream`);
    let dest: Endpoint;
    let source: IpAddress;
    if (to.kind === 'hub') {
      if (!this.deps.hub) return this.refuse(id, 'this relay is not in the hub: it carries no hub peer');
      dest = this.deps.hub.endpoint;
      source = this.deps.hub.source;
    } else {
      const side = this.deps.streamSide(to.id, publicKey);
      switch (side.kind) {
        case 'not-owned':
          return this.close('not-owned', `allocation ${to.id} is not this node's`);
        case 'unknown':
          return this.refuse(id, `no allocation ${to.id} on this relay (released, or never made)`);
        case 'not-stream':
          return this.refuse(id, `allocation ${to.id} was made for UDP; the hub allocates anew for a stream`);
        case 'ok':
          dest = side.relay;
          source = side.source;
      }
    }
    if ([...this.channels.values()].some((c) => sameTarget(c.to, to))) return this.close('garbage', 'a target opened twice on one stream');
    this.ended.delete(id);
    const socket = this.deps.ports.take(publicKey, to, source, this);
    const ch: Channel = { id, to, socket, dest, destText: dest.address.toString() };
    socket.on('message', (buf, rinfo) => this.down(ch, buf, rinfo));
    this.channels.set(id, ch);
    this.send({ type: 'opened', channel: id });
  }

  private refuse(channel: number, reason: string): void {
    // Bounded by the channel numbers (u16): a shim cannot grow it beyond 65,536 entries.
    this.ended.add(channel);
    this.send({ type: 'closed', channel, reason });
  }

  private down(ch: Channel, buf: Buffer, rinfo: RemoteInfo): void {
    // Only the one relay port (or the hub's WireGuard) of this channel is heard: another local
    // process cannot reach the shim through it.
    if (rinfo.port !== ch.dest.port || rinfo.address !== ch.destText) return;
    if (this.batcher.data(ch.id, buf)) {
      this.counters.down.packets++;
      this.counters.down.bytes += buf.length;
    } else {
      this.counters.dropped++;
    }
  }

  private dropChannel(ch: Channel): void {
    this.channels.delete(ch.id);
    if (this.node) this.deps.ports.release(this.node, ch.to, this);
  }
}

/** Words for the agent's log; never the ticket itself. */
function ticketRefusal(id: string, reason: 'unknown' | 'wrong' | 'expired'): string {
  switch (reason) {
    case 'unknown':
      return `no ticket for allocation ${id} on this relay (released, or never made here)`;
    case 'wrong':
      return `the ticket is not the hub's ticket for this node's side of allocation ${id}`;
    case 'expired':
      return `the ticket for allocation ${id} was not presented in time; the hub allocates anew`;
  }
}

function sameTarget(x: StreamTarget, y: StreamTarget): boolean {
  return x.kind === 'hub' ? y.kind === 'hub' : y.kind === 'allocation' && y.id === x.id;
}
