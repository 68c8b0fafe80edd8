import { createConnection, type Socket } from 'node:net';
import { UapiError, uapiSocketPath } from './uapi.js';

/**
 * One UAPI connection kept open for many requests, one at a time (wireguard-go serves get and
 * set operations in a loop on each connection until it closes). The hub reads its device up to
 * 50 times a second: a connection per read cost 420 µs of the hub's CPU per read against 64 µs on
 * a kept connection (2 peers, measured on this machine), and wireguard-go an accept and a
 * goroutine each time. A connection that fails, closes or times out is dropped and the next
 * request opens a new one, so a restarted wireguard-go is picked up without a word.
 */
export class UapiConnection {
  private sock: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * The response so far. Reads land in one kept buffer and are copied into this one, also kept: at
   * 1,000 peers a response is 340 KB, four times a second, and fresh buffers for its chunks and
   * their concatenation cost the hub more (page faults, GC) than parsing it.
   */
  private response = Buffer.allocUnsafe(64 * 1024);
  private length = 0;
  private waiting: { resolve(response: Buffer): void; reject(err: Error): void } | undefined;

  constructor(
    readonly ifname: string,
    private readonly timeoutMs = 2000,
  ) {}

  /** Sends one request and resolves with its response (ending in its errno line and an empty line). */
  async request(text: string): Promise<string> {
    // UAPI is ASCII: latin1 decodes it without UTF-8's cost.
    return (await this.requestBytes(text)).toString('latin1');
  }

  /**
   * The same, undecoded: a 1,000-peer get is 340 KB, and its parser decodes only what changed. The
   * bytes are this connection's buffer, valid until the next request: read them at once.
   */
  requestBytes(text: string): Promise<Buffer> {
    const run = this.queue.then(() => this.exchange(text));
    // The queue goes on after a failure: each request stands alone.
    this.queue = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.drop(new UapiError(`${this.ifname}: UAPI connection closed`));
  }

  private connect(): Promise<Socket> {
    if (this.sock) return Promise.resolve(this.sock);
    this.connecting ??= new Promise<Socket>((resolve, reject) => {
      const sock = createConnection({
        path: uapiSocketPath(this.ifname),
        onread: {
          buffer: Buffer.allocUnsafe(64 * 1024),
          callback: (n: number, buf: Uint8Array) => {
            this.receive(buf.subarray(0, n));
            return true;
          },
        },
      });
      // An idle kept connection must not keep a finished process alive.
      sock.unref();
      sock.once('connect', () => {
        this.connecting = undefined;
        this.sock = sock;
        resolve(sock);
      });
      sock.on('error', (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'ENOENT' ? ` (no WireGuard interface "${this.ifname}" is up: ${uapiSocketPath(this.ifname)} is missing)` : '';
        const e = new UapiError(`${this.ifname}: ${err.message}${hint}`);
        if (this.connecting) {
          this.connecting = undefined;
          reject(e);
        }
        this.drop(e, sock);
      });
      sock.on('close', () => this.drop(new UapiError(`${this.ifname}: wireguard-go closed the UAPI connection`), sock));
    });
    return this.connecting;
  }

  private async exchange(text: string): Promise<Buffer> {
    const sock = await this.connect();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // A late answer would be read as the next request's: this connection is done.
        this.drop(new UapiError(`${this.ifname}: UAPI did not answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.length = 0;
      this.waiting = {
        resolve: (t) => {
          clearTimeout(timer);
          resolve(t);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      sock.write(text);
    });
  }

  private receive(d: Uint8Array): void {
    if (this.length + d.length > this.response.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * this.response.length, this.length + d.length));
      this.response.copy(grown, 0, 0, this.length);
      this.response = grown;
    }
    this.response.set(d, this.length);
    this.length += d.length;
    // A response ends with an empty line, after the errno line; the two newlines may be split across reads.
    if (this.length < 2 || this.response[this.length - 2] !== 0x0a || this.response[this.length - 1] !== 0x0a) return;
    const w = this.waiting;
    this.waiting = undefined;
    const response = this.response.subarray(0, this.length);
    this.length = 0;
    w?.resolve(response);
  }

  private drop(err: Error, which?: Socket): void {
    if (which && which !== this.sock) return;
    const sock = this.sock;
    this.sock = undefined;
    this.length = 0;
    sock?.destroy();
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(err);
  }
}
