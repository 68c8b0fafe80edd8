import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import type { FrameSink } from './framing.js';

/**
 * One stream of frames, whichever way it is carried: straight on a TLS socket, or inside
 * WebSocket binary messages (which are only chunks of the same byte stream: a frame may span
 * two messages, and a message may hold many frames). Both ends use this one shape, so the relay
 * and the shim run the same code over either.
 */
export interface Pipe extends FrameSink {
  /** Bytes handed on (to the kernel) so far: a pipe with bytes queued and this not moving is stalled. */
  readonly flushed: number;
  /** `onChunk` gets the bytes as they come; `onEnd` once, however the pipe ended. */
  start(onChunk: (chunk: Buffer) => void, onEnd: (err?: Error) => void): void;
  /** Ends the pipe now, without waiting for queued bytes (a peer that misbehaved, or a stall). */
  destroy(): void;
  /** Ends the pipe after the bytes already written (a last `error` message). */
  end(): void;
}

export function socketPipe(socket: Duplex & { readonly writableLength: number }): Pipe {
  let flushed = 0;
  return {
    get queued() {
      return socket.writableLength;
    },
    get flushed() {
      return flushed;
    },
    write: (bytes) => {
      socket.write(bytes, () => (flushed += bytes.length));
    },
    start(onChunk, onEnd) {
      let ended = false;
      const done = (err?: Error) => {
        if (ended) return;
        ended = true;
        onEnd(err);
      };
      socket.on('data', (c: Buffer) => onChunk(c));
      socket.on('error', (err) => done(err));
      socket.on('close', () => done());
      socket.on('end', () => socket.end());
      if (socket.isPaused()) socket.resume();
    },
    destroy: () => socket.destroy(),
    end: () => {
      socket.end();
      // A peer that never reads must not keep a socket we are done with.
      setTimeout(() => socket.destroy(), 1000).unref();
    },
  };
}

export function webSocketPipe(ws: WebSocket): Pipe {
  let flushed = 0;
  return {
    get queued() {
      return ws.bufferedAmount;
    },
    get flushed() {
      return flushed;
    },
    write: (bytes) => {
      if (ws.readyState === ws.OPEN) ws.send(bytes, { binary: true }, () => (flushed += bytes.length));
    },
    start(onChunk, onEnd) {
      let ended = false;
      const done = (err?: Error) => {
        if (ended) return;
        ended = true;
        onEnd(err);
      };
      ws.on('message', (data, isBinary) => {
        if (!isBinary) {
          // Text is not part of this protocol: read as bytes, it fails the decoder, which closes.
          onChunk(Buffer.from([0, 0]));
          return;
        }
        if (Buffer.isBuffer(data)) onChunk(data);
        else if (Array.isArray(data)) for (const d of data) onChunk(d);
        else onChunk(Buffer.from(data));
      });
      ws.on('error', (err) => done(err));
      ws.on('close', () => done());
    },
    destroy: () => ws.terminate(),
    end: () => {
      ws.close();
      setTimeout(() => ws.terminate(), 1000).unref();
    },
  };
}
