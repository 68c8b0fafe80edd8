import WebSocket from 'ws';
import type { z } from 'zod';
import { HEARTBEAT, heartbeat, type HeartbeatOptions } from './heartbeat.js';
import type { Logger } from './log.js';
import { decode, type AgentConfig } from './protocol.js';

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10_000;

export interface HubLinkOptions<In> {
  /** The node's file: the hub's API URL on the tunnel and the node's token. */
  config: AgentConfig;
  path: '/v1/agent' | '/v1/relay';
  schema: z.ZodType<In>;
  log: Logger;
  onOpen(): void;
  /** Messages that passed the schema, in the order they came. */
  onMessage(m: In): void;
  onClose?(): void;
  /** Ping/pong toward the hub (core/heartbeat.ts); tests pass a fake clock. */
  heartbeat?: HeartbeatOptions;
}

/**
 * A node's control connection to the hub: a WebSocket inside its tunnel, authenticated by the
 * tunnel address and the token, that reconnects with backoff (250 ms doubling to 10 s). Nothing
 * already set up on the device depends on it.
 */
export class HubLink<In, Out> {
  private ws?: WebSocket;
  private stopped = false;
  private backoff = RECONNECT_MIN_MS;
  private timer?: NodeJS.Timeout;

  constructor(private readonly opts: HubLinkOptions<In>) {}

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.terminate();
  }

  /**
   * The way to the hub changed (agent/hub-stream.ts moved the hub peer to or from the TLS
   * stream): an attempt still waiting for its TCP handshake started on the old way, whose
   * packets WireGuard dropped with the old peer entry, and would wait out its 5 s timeout and the
   * backoff. Start over now.
   */
  retryNow(): void {
    if (this.stopped || this.connected) return;
    clearTimeout(this.timer);
    this.backoff = RECONNECT_MIN_MS;
    const old = this.ws;
    this.ws = undefined;
    if (old) {
      old.removeAllListeners();
      old.on('error', () => undefined);
      old.terminate();
    }
    this.connect();
  }

  send(m: Out): void {
    const ws = this.ws;
    if (ws && ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
  }

  private connect(): void {
    if (this.stopped) return;
    const { config, log } = this.opts;
    const url = config.hubUrl.replace(/^http/, 'ws').replace(/\/$/, '') + this.opts.path;
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${config.token}` }, handshakeTimeout: 5000 });
    this.ws = ws;
    ws.on('open', () => {
      this.backoff = RECONNECT_MIN_MS;
      log.info({ hub: config.hubUrl }, 'connected to hub');
      heartbeat(ws, this.opts.heartbeat ?? HEARTBEAT, () => log.warn({ hub: config.hubUrl }, 'the hub stopped answering pings: reconnecting'));
      this.opts.onOpen();
    });
    ws.on('message', (data) => {
      let m: In;
      try {
        m = decode(this.opts.schema, data.toString(), 'message from hub');
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'malformed message from hub ignored');
        return;
      }
      this.opts.onMessage(m);
    });
    ws.on('unexpected-response', (_req, res) => log.error({ status: res.statusCode }, res.statusCode === 401 ? 'the hub rejected our token' : 'the hub refused the connection'));
    ws.on('error', (err) => log.debug({ err: err.message }, 'hub connection error'));
    ws.on('close', () => {
      if (this.stopped) return;
      this.opts.onClose?.();
      const delay = this.backoff;
      this.backoff = Math.min(RECONNECT_MAX_MS, this.backoff * 2);
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }
}
