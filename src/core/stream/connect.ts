import { request as httpRequest } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import { HostPort } from '../net/endpoint.js';
import { STREAM_WS_PATH } from './messages.js';
import { socketPipe, webSocketPipe, type Pipe } from './pipe.js';
import { pinProblem } from './tls-identity.js';
import { proxyEnvironment } from './system-proxy.js';

/**
 * How a shim reaches a relay's stream side: TCP (straight, or through an HTTP proxy with
 * CONNECT), then TLS checked against the pin, then either frames on the TLS socket or a
 * WebSocket on it. The pin is checked before a byte of ours is sent, so the node's token never
 * reaches a certificate that is not the relay's.
 */

export type StreamTransport = 'tls' | 'websocket';

/** How the relay's certificate is trusted: its pinned key (the default), or the system's CAs and the name. */
export type StreamTrust = { readonly pin: string } | { readonly ca: 'system' };

export interface ConnectOptions {
  relay: HostPort;
  trust: StreamTrust;
  transport: StreamTransport;
  /** An HTTP proxy (http://[user:pass@]host:port) to CONNECT through; see proxyFor(). */
  proxy?: URL;
  /** For each step (TCP, proxy, TLS, upgrade); the whole connect is bounded by it once. */
  timeoutMs?: number;
}

export class StreamConnectError extends Error {
  override name = 'StreamConnectError';
  constructor(
    message: string,
    /** A refusal that retrying does not fix (a wrong certificate, a proxy that says 407). */
    readonly permanent = false,
  ) {
    super(message);
  }
}

/**
 * The proxy for `relay` from the environment, which is where Linux keeps the system's proxy
 * settings: HTTPS_PROXY (or https_proxy, then ALL_PROXY), unless NO_PROXY names the host. By
 * default the process's environment, else /etc/environment's (system-proxy.ts).
 */
export function proxyFor(relay: HostPort, env: NodeJS.ProcessEnv = proxyEnvironment()): URL | undefined {
  const text = env.HTTPS_PROXY ?? env.https_proxy ?? env.ALL_PROXY ?? env.all_proxy;
  if (!text) return undefined;
  const noProxy = (env.NO_PROXY ?? env.no_proxy ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  const host = relay.host.toLowerCase();
  if (noProxy.some((n) => n === '*' || host === n.replace(/^\./, '') || host.endsWith(n.startsWith('.') ? n : `.${n}`))) return undefined;
  let url: URL;
  try {
    url = new URL(text.includes('://') ? text : `http://${text}`);
  } catch {
    throw new StreamConnectError('HTTPS_PROXY is not a URL: give it as http://host:port', true);
  }
  if (url.protocol !== 'http:') throw new StreamConnectError(`HTTPS_PROXY is a ${url.protocol} proxy; only http:// proxies (CONNECT) are supported`, true);
  return url;
}

export async function connectStream(opts: ConnectOptions): Promise<Pipe> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const where = `the relay at ${opts.relay.toString()}`;
  const tcp = await (opts.proxy ? viaProxy(opts.proxy, opts.relay, timeoutMs) : direct(opts.relay, timeoutMs));
  tcp.setNoDelay(true);
  let tls: TLSSocket;
  try {
    tls = await withTimeout(handshake(tcp, opts), timeoutMs, `no TLS handshake with ${where} within ${timeoutMs} ms`);
  } catch (err) {
    tcp.destroy();
    throw err;
  }
  if ('pin' in opts.trust) {
    const why = pinProblem(tls, opts.trust.pin, where);
    if (why) {
      tls.destroy();
      throw new StreamConnectError(why, true);
    }
  }
  if (opts.transport === 'tls') return socketPipe(tls);
  const ws = new WebSocket(`wss://${opts.relay.toString()}${STREAM_WS_PATH}`, {
    // The TLS socket is ours, already checked: ws speaks HTTP on it and nothing else.
    createConnection: () => tls,
    perMessageDeflate: false,
    maxPayload: 256 * 1024,
    handshakeTimeout: timeoutMs,
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new StreamConnectError(`${where} refused the WebSocket upgrade (HTTP ${res.statusCode})`)));
    ws.once('error', (err) => reject(new StreamConnectError(`WebSocket to ${where}: ${err.message}`)));
  }).catch((err: unknown) => {
    ws.terminate();
    throw err;
  });
  return webSocketPipe(ws);
}

function direct(relay: HostPort, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: relay.host, port: relay.port });
    // A network that drops SYNs to 443 must not leave a connect pending per retry: it is destroyed, not abandoned.
    const timer = setTimeout(() => {
      s.destroy();
      reject(new StreamConnectError(`no TCP connection to the relay at ${relay.toString()} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new StreamConnectError(`TCP to ${relay.toString()}: ${err.code ?? err.message}`));
    });
  });
}

function viaProxy(proxy: URL, relay: HostPort, timeoutMs: number): Promise<Socket> {
  const target = relay.toString();
  const headers: Record<string, string> = { host: target };
  if (proxy.username) headers['proxy-authorization'] = `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}`;
  // Where the proxy is, for messages: never its credentials.
  const at = `the proxy ${proxy.hostname}:${proxy.port || 80}`;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: proxy.hostname.replace(/^\[|\]$/g, ''), port: Number(proxy.port || 80), method: 'CONNECT', path: target, headers, timeout: timeoutMs });
    req.once('connect', (res, socket, head) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new StreamConnectError(`${at} refused CONNECT to ${target} (HTTP ${res.statusCode}${res.statusCode === 407 ? ': it wants credentials; put them in HTTPS_PROXY as http://user:password@host:port' : ''})`, res.statusCode === 407 || res.statusCode === 403));
        return;
      }
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', (err: NodeJS.ErrnoException) => reject(new StreamConnectError(`${at}: ${err.code ?? err.message}`)));
    req.end();
  });
}

function handshake(tcp: Socket, opts: ConnectOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const system = 'ca' in opts.trust;
    const s = tlsConnect({
      socket: tcp,
      // SNI is for names only (RFC 6066); with a pin the name is not what is checked.
      servername: opts.relay.address ? undefined : opts.relay.host,
      rejectUnauthorized: system,
      minVersion: 'TLSv1.2',
      ALPNProtocols: opts.transport === 'websocket' ? ['http/1.1'] : undefined,
    });
    s.once('secureConnect', () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) =>
      reject(new StreamConnectError(system && /certificate|self.signed|verify/i.test(err.message) ? `the relay's certificate is not trusted by this system's CAs (${err.code ?? err.message}); use the pinned certificate from the join code instead` : `TLS with the relay: ${err.code ?? err.message}`, system)),
    );
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StreamConnectError(message)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
