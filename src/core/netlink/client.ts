import { startExchange, stepExchange, type ExchangeMode, type ExchangeState } from './exchange.js';
import { decodeFamily, encodeGenl, familyRequest, type Family } from './genl.js';
import { decodeMessages, NetlinkError, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST } from './message.js';
import { openTransport, type NetlinkTransport, type TransportEvents } from './transport.js';

/**
 * Requests over one long-lived generic netlink socket: each gets a sequence number, replies are
 * matched to it, and each request has a deadline. Nothing forks; a read is two system calls per
 * datagram of the reply.
 */

interface Pending {
  mode: ExchangeMode;
  what: string;
  state: ExchangeState;
  resolve(parts: Buffer[], interrupted: boolean): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export interface GenlClientOptions {
  timeoutMs?: number;
  /** For tests: a fake kernel. */
  transport?: (events: TransportEvents) => NetlinkTransport;
}

export interface DumpResult {
  /** The generic netlink payloads of the dump's parts, in order. */
  parts: Buffer[];
  /** The kernel flagged the dump as inconsistent (NLM_F_DUMP_INTR: the object changed while it was read). */
  interrupted: boolean;
}

export class GenlClient {
  private readonly transport: NetlinkTransport;
  private readonly pending = new Map<number, Pending>();
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly timeoutMs: number;
  private closed = false;

  constructor(opts: GenlClientOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.transport = (opts.transport ?? openTransport)({ onDatagram: (d) => this.receive(d), onError: (e) => this.failAll(e) });
  }

  async family(name: string): Promise<Family> {
    const r = await this.request((seq) => familyRequest(name, seq), 'ack', `generic netlink family "${name}"`);
    if (r.parts.length === 0) throw new NetlinkError(`the controller acknowledged family "${name}" without describing it`);
    return decodeFamily(r.parts[0]);
  }

  dump(familyId: number, cmd: number, version: number, attributes: Buffer[], what: string): Promise<DumpResult> {
    return this.request((seq) => encodeGenl(familyId, NLM_F_REQUEST | NLM_F_DUMP, seq, cmd, version, attributes), 'dump', what);
  }

  async ack(familyId: number, cmd: number, version: number, attributes: Buffer[], what: string): Promise<void> {
    await this.request((seq) => encodeGenl(familyId, NLM_F_REQUEST | NLM_F_ACK, seq, cmd, version, attributes), 'ack', what);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new NetlinkError('the netlink socket was closed'));
    this.transport.close();
  }

  private next(): number {
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  private request(build: (seq: number) => Buffer, mode: ExchangeMode, what: string): Promise<DumpResult> {
    if (this.closed) return Promise.reject(new NetlinkError(`${what}: the netlink socket is closed`));
    const seq = this.next();
    let datagram: Buffer;
    try {
      datagram = build(seq);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      // The kernel answers at once; a deadline passes only when this process was not running (a
      // loaded Raspberry Pi, a TCG guest: stalls of seconds were seen). After such a stall the
      // timers run before the loop reads the socket, so the answer may already be waiting:
      // setImmediate lets that read happen first.
      const timer = setTimeout(() => {
        setImmediate(() => {
          if (this.pending.get(seq)?.timer !== timer) return;
          this.pending.delete(seq);
          reject(new NetlinkError(`${what}: the kernel did not answer within ${this.timeoutMs} ms`));
        });
      }, this.timeoutMs);
      this.pending.set(seq, { mode, what, state: startExchange(), resolve: (parts, interrupted) => resolve({ parts, interrupted }), reject, timer });
      this.transport.send(datagram);
    });
  }

  private receive(datagram: Buffer): void {
    let messages;
    try {
      messages = decodeMessages(datagram);
    } catch (err) {
      // A datagram we cannot frame cannot be matched to a request: fail them all rather than hang.
      this.failAll(err as Error);
      return;
    }
    for (const m of messages) {
      const p = this.pending.get(m.seq);
      if (!p) continue;
      let state: ExchangeState;
      try {
        state = stepExchange(p.state, p.mode, m, p.what);
      } catch (err) {
        state = { kind: 'failed', error: err instanceof NetlinkError ? err : new NetlinkError(`${p.what}: ${(err as Error).message}`) };
      }
      p.state = state;
      if (state.kind === 'waiting') continue;
      this.pending.delete(m.seq);
      clearTimeout(p.timer);
      if (state.kind === 'done') p.resolve(state.parts.map((x) => x.payload), state.interrupted);
      else p.reject(state.error);
    }
  }

  private failAll(err: Error): void {
    for (const [seq, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(seq);
      p.reject(err instanceof NetlinkError ? new NetlinkError(`${p.what}: ${err.message}`, err.errno) : new NetlinkError(`${p.what}: ${err.message}`));
    }
  }
}
