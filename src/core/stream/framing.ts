/**
 * The byte layout of the stream transport (issue 12): WireGuard datagrams and a few control
 * messages over one TCP byte stream (TLS, or WebSocket over TLS), between an agent's shim and a
 * relay. A TCP stream has no message boundaries, so each frame says its length:
 *
 *   frame   = length:u16be body            (length = bytes of body, 1 .. maxBody)
 *   body    = 0x00 channel:u16be datagram  (DATA: one WireGuard datagram on a channel)
 *           | 0x01 json                    (CONTROL: one message of stream/messages.ts, UTF-8)
 *
 * A channel is one of the node's allocations (or its hub peer) on this stream; the datagram is
 * passed on unread. Frames never span a choice the reader has to undo: a reader that sees a
 * length above its cap, a zero length, an unknown type or a DATA frame without its channel has
 * a peer that is not speaking this protocol, and the stream is closed (the close is counted).
 *
 * Why u16: a WireGuard datagram is at most the interface MTU plus 32 bytes of header and 16 of
 * tag, so 65,535 bytes hold any of them, and two bytes of length per datagram is what keeps the
 * TCP path near the UDP one in throughput.
 */

export const FRAME_DATA = 0x00;
export const FRAME_CONTROL = 0x01;

/** Bytes in front of a datagram: length, type, channel. */
export const DATA_OVERHEAD = 2 + 1 + 2;

/**
 * The largest datagram carried by default: a 9000-byte jumbo MTU plus WireGuard's 32 bytes of
 * header and 16 of tag, rounded up. The common 1420-MTU datagram is 1452 bytes.
 */
export const MAX_DATAGRAM = 9216;
/** Control messages are a few hundred bytes of JSON; a larger one is not one of ours. */
export const MAX_CONTROL = 4096;
/** What a frame's body can be at most in this protocol: the u16 length field's limit. */
export const MAX_BODY_LIMIT = 0xffff;

export type Frame =
  | { readonly type: 'data'; readonly channel: number; readonly datagram: Buffer }
  | { readonly type: 'control'; readonly text: string };

export type FrameProblem =
  /** A length above the reader's cap: nothing of it is buffered. */
  | { readonly kind: 'oversized'; readonly length: number; readonly max: number }
  /** Not a frame of this protocol: zero length, unknown type, a DATA frame too short for its channel, a control message over its cap. */
  | { readonly kind: 'garbage'; readonly why: string };

export interface DecoderOptions {
  /** Largest datagram accepted (default MAX_DATAGRAM). */
  maxDatagram?: number;
  /** Largest control message accepted (default MAX_CONTROL). */
  maxControl?: number;
}

export class FramingError extends Error {
  override name = 'FramingError';
}

/** The bytes of one DATA frame. */
export function encodeData(channel: number, datagram: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(DATA_OVERHEAD + datagram.length);
  writeData(out, 0, channel, datagram);
  return out;
}

/** The bytes of one CONTROL frame carrying `text` (JSON). */
export function encodeControl(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  if (body.length + 1 > MAX_BODY_LIMIT) throw new FramingError(`a control message of ${body.length} bytes does not fit a frame (at most ${MAX_BODY_LIMIT - 1})`);
  const out = Buffer.allocUnsafe(3 + body.length);
  out.writeUInt16BE(body.length + 1, 0);
  out[2] = FRAME_CONTROL;
  body.copy(out, 3);
  return out;
}

function checkChannel(channel: number): void {
  if (!Number.isInteger(channel) || channel < 0 || channel > 0xffff) throw new FramingError(`channel ${channel} is not a u16`);
}

function writeData(out: Buffer, at: number, channel: number, datagram: Uint8Array): number {
  checkChannel(channel);
  const body = 3 + datagram.length;
  if (body > MAX_BODY_LIMIT) throw new FramingError(`a datagram of ${datagram.length} bytes does not fit a frame (at most ${MAX_BODY_LIMIT - 3})`);
  out.writeUInt16BE(body, at);
  out[at + 2] = FRAME_DATA;
  out.writeUInt16BE(channel, at + 3);
  out.set(datagram, at + DATA_OVERHEAD);
  return at + DATA_OVERHEAD + datagram.length;
}

/**
 * Datagrams that arrive together leave together: one write, one TLS record, one TCP segment
 * where they fit, instead of one syscall and one record per datagram. The batch is written at
 * the end of the current event-loop turn (setImmediate), after every datagram the sockets had
 * queued has been read, so nothing waits for a timer; with TCP_NODELAY the write goes at once.
 *
 * Bounded: a sink that cannot take more (its buffered bytes over `maxQueued`) makes push() drop
 * the datagram and count it instead of queueing it. WireGuard's own retries cope with loss; a
 * queue that grows without bound would hold every pair of the relay behind one stalled reader.
 */
export interface FrameSink {
  /** Bytes written and not yet handed to the kernel (net.Socket#writableLength, or the WebSocket's bufferedAmount). */
  readonly queued: number;
  write(bytes: Buffer): void;
}

export interface BatcherOptions {
  /** Drop, not queue, while the sink holds more than this many bytes (default 512 KiB). */
  maxQueued?: number;
  /** Flush now once a batch reaches this many bytes (default 64 KiB: one TLS record is at most 16 KiB, so larger buys nothing). */
  maxBatch?: number;
  /** How a batch is scheduled (tests pass a synchronous one). */
  schedule?: (fn: () => void) => void;
}

export class FrameBatcher {
  private parts: Buffer[] = [];
  private size = 0;
  private scheduled = false;
  private closed = false;
  /** Datagrams dropped because the sink was full. */
  dropped = 0;
  /** Datagrams and control messages written. */
  frames = 0;
  private readonly maxQueued: number;
  private readonly maxBatch: number;
  private readonly schedule: (fn: () => void) => void;

  constructor(
    private readonly sink: FrameSink,
    opts: BatcherOptions = {},
  ) {
    this.maxQueued = opts.maxQueued ?? 512 * 1024;
    this.maxBatch = opts.maxBatch ?? 64 * 1024;
    this.schedule = opts.schedule ?? ((fn) => setImmediate(fn));
  }

  /** Queues one datagram; false when it was dropped (sink full or closed). */
  data(channel: number, datagram: Uint8Array): boolean {
    if (this.closed || this.sink.queued + this.size > this.maxQueued) {
      this.dropped++;
      return false;
    }
    this.add(encodeData(channel, datagram));
    return true;
  }

  /** Control messages are never dropped for a full sink: there are few, and losing one would leave the two ends disagreeing. */
  control(text: string): void {
    if (this.closed) return;
    this.add(encodeControl(text));
  }

  /** Writes what is queued now. */
  flush(): void {
    this.scheduled = false;
    if (this.size === 0 || this.closed) return;
    const out = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    this.sink.write(out);
  }

  /** Nothing more is written (the stream is gone). */
  close(): void {
    this.closed = true;
    this.parts = [];
    this.size = 0;
  }

  private add(frame: Buffer): void {
    this.parts.push(frame);
    this.size += frame.length;
    this.frames++;
    if (this.size >= this.maxBatch) {
      this.flush();
      return;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      this.schedule(() => this.flush());
    }
  }
}

/**
 * Reads frames out of a byte stream delivered in chunks of any size. Linear: a byte is copied
 * at most twice (once into the pending buffer of a frame split across chunks, once when that
 * frame completes), whatever the chunking (one byte at a time included). Bounded: it holds at
 * most one frame's worth beyond the chunk it is given, and a length above the cap is refused
 * on its two length bytes, before any of the body is kept.
 *
 * After a problem it reads nothing more: the caller closes the stream.
 */
export class FrameDecoder {
  /** Chunks of an incomplete frame, and their total length. */
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** Bytes needed in `pending` before anything can be decided: 2 for the length, then 2 + length. */
  private need = 2;
  private failed: FrameProblem | undefined;
  private readonly maxBody: number;
  private readonly maxControl: number;
  private readonly maxDatagram: number;

  constructor(opts: DecoderOptions = {}) {
    this.maxDatagram = opts.maxDatagram ?? MAX_DATAGRAM;
    this.maxControl = opts.maxControl ?? MAX_CONTROL;
    this.maxBody = Math.min(MAX_BODY_LIMIT, Math.max(3 + this.maxDatagram, 1 + this.maxControl));
  }

  get problem(): FrameProblem | undefined {
    return this.failed;
  }

  /** Bytes held for an incomplete frame (never more than one frame). */
  get buffered(): number {
    return this.pendingLen;
  }

  /**
   * Calls `onFrame` for every complete frame in `chunk` (and what came before it), in order.
   * Returns the problem that stopped it, if one did; frames before the problem were delivered.
   * A frame's datagram is a view into the chunk's memory: copy it to keep it past the callback.
   */
  push(chunk: Buffer, onFrame: (f: Frame) => void): FrameProblem | undefined {
    if (this.failed) return this.failed;
    if (chunk.length === 0) return undefined;
    let buf: Buffer;
    if (this.pendingLen === 0) {
      buf = chunk;
    } else {
      this.pending.push(chunk);
      this.pendingLen += chunk.length;
      if (this.pendingLen < this.need) return undefined;
      buf = Buffer.concat(this.pending, this.pendingLen);
      this.pending = [];
      this.pendingLen = 0;
    }
    let at = 0;
    while (buf.length - at >= 2) {
      const length = buf.readUInt16BE(at);
      const problem = this.checkLength(length);
      if (problem) return this.fail(problem);
      if (buf.length - at < 2 + length) break;
      const body = buf.subarray(at + 2, at + 2 + length);
      at += 2 + length;
      const frame = this.frame(body);
      if ('kind' in frame) return this.fail(frame);
      onFrame(frame);
    }
    if (at < buf.length) {
      const rest = buf.subarray(at);
      this.pending = [rest];
      this.pendingLen = rest.length;
      this.need = rest.length >= 2 ? 2 + rest.readUInt16BE(0) : 2;
    } else {
      this.need = 2;
    }
    return undefined;
  }

  private checkLength(length: number): FrameProblem | undefined {
    if (length === 0) return { kind: 'garbage', why: 'a frame of length 0' };
    if (length > this.maxBody) return { kind: 'oversized', length, max: this.maxBody };
    return undefined;
  }

  private frame(body: Buffer): Frame | FrameProblem {
    switch (body[0]) {
      case FRAME_DATA:
        if (body.length < 3) return { kind: 'garbage', why: 'a DATA frame without its channel' };
        if (body.length - 3 > this.maxDatagram) return { kind: 'oversized', length: body.length - 3, max: this.maxDatagram };
        return { type: 'data', channel: body.readUInt16BE(1), datagram: body.subarray(3) };
      case FRAME_CONTROL:
        if (body.length - 1 > this.maxControl) return { kind: 'oversized', length: body.length - 1, max: this.maxControl };
        return { type: 'control', text: body.toString('utf8', 1) };
      default:
        return { kind: 'garbage', why: `unknown frame type 0x${body[0].toString(16).padStart(2, '0')}` };
    }
  }

  private fail(p: FrameProblem): FrameProblem {
    this.failed = p;
    this.pending = [];
    this.pendingLen = 0;
    return p;
  }
}

/** A problem as one line for a log or an error message. */
export function describeProblem(p: FrameProblem): string {
  return p.kind === 'oversized' ? `a frame of ${p.length} bytes (at most ${p.max})` : p.why;
}
