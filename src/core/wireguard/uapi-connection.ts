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
  private chunks: Buffer[] = [];
  private waiting: { resolve(text: string): void; reject(err: Error): void } | undefined;

  constructor(
    readonly ifname: string,
    private readonly timeoutMs = 2000,
  ) {}

  /** Sends one request and resolves with its response (ending in its errno line and an empty line). */
  request(text: string): Promise<string> {
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
      const sock = createConnection(uapiSocketPath(this.ifname));
      // An idle kept connection must not keep a finished process alive.
      sock.unref();
      sock.once('connect', () => {
        this.connecting = undefined;
        this.sock = sock;
        resolve(sock);
      });
      sock.on('data', (d: Buffer) => this.receive(d));
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

  private async exchange(text: string): Promise<string> {
    const sock = await this.connect();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // A late answer would be read as the next request's: this connection is done.
        this.drop(new UapiError(`${this.ifname}: UAPI did not answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.chunks = [];
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

  private receive(d: Buffer): void {
    this.chunks.push(d);
    // A response ends with an empty line, after the errno line; the two newlines may be split across chunks.
    const last = d.length >= 2 ? d.subarray(-2) : Buffer.concat(this.chunks.slice(-2)).subarray(-2);
    if (last.length < 2 || last[0] !== 0x0a || last[1] !== 0x0a) return;
    const w = this.waiting;
    // UAPI is ASCII: latin1 decodes it once, at the end, without UTF-8's cost (a 1,000-peer read is 340 KB).
    const text = Buffer.concat(this.chunks).toString('latin1');
    this.waiting = undefined;
    this.chunks = [];
    w?.resolve(text);
  }

  private drop(err: Error, which?: Socket): void {
    if (which && which !== this.sock) return;
    const sock = this.sock;
    this.sock = undefined;
    this.chunks = [];
    sock?.destroy();
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(err);
  }
}
