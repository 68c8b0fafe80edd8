import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../core/log.js';
import { agentMessageSchema, decode } from '../core/protocol.js';
import { hashToken } from './directory.js';
import type { DirectoryView } from './directory-view.js';
import { handleEnrol } from './enrol-api.js';
import { readBody, reply, sourceAddress } from './http.js';
import { joinTunnelNode, joinTunnelRoute } from './join-fence.js';
import { IpAddress } from '../core/net/address.js';
import { peerInfo } from './peer-view.js';
import type { AgentSessions } from './sessions.js';
import { isPending, type HubSettings, type NodeRecord } from './store/model.js';
import type { DirectoryStore } from './store/store.js';
import type { AgentSettings } from '../core/protocol.js';
import type { PeerState } from '../core/wireguard/uapi.js';
import type { HubView } from '../core/doctor/report.js';

/**
 * The control API, on the hub's tunnel address only. Inside the tunnel a packet's source address
 * proves which node sent it (WireGuard's cryptokey routing), so each request must come from a
 * node's tunnel address *and* carry that node's token. Enrolment is the exception: it comes
 * through a join code's one-time tunnel (enrol-api.ts).
 */

export interface ControlApiDeps {
  hub: HubSettings;
  store: DirectoryStore;
  view: DirectoryView;
  sessions: AgentSessions;
  settingsFor(node: NodeRecord): AgentSettings;
  seen(publicKey: string): PeerState | undefined;
  /** A relay node opened its control connection. */
  relayConnected(node: NodeRecord, ws: WebSocket): void;
  /** What `wgp2p doctor` on this agent is told of it (doctor-view.ts); absent: 404. */
  doctorView?(node: NodeRecord): Promise<HubView | undefined>;
  /** The device's own key is in the store: put it on the interface (before the reply goes out). */
  enrolled(node: NodeRecord): Promise<void>;
  log: Logger;
  limits?: Partial<ApiLimits>;
}

type Auth = { node: NodeRecord } | { status: number; message: string };

/**
 * What one caller may hold. Every source on the tunnel can reach the API (plain clients, a host
 * on the hub's link); an agent needs one WebSocket and now and then a request, so 8 connections
 * per source is ample and 400 idle ones from one phone (seen in review) are not. Headers must
 * arrive within 5 s (slowloris), a request within 10 s; an idle keep-alive connection goes after 5 s.
 */
export interface ApiLimits {
  perSource: number;
  total: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  idleMs: number;
}

export const DEFAULT_API_LIMITS: ApiLimits = { perSource: 8, total: 2048, headersTimeoutMs: 5000, requestTimeoutMs: 10_000, idleMs: 5000 };

export class ControlApi {
  private server?: Server;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4 << 20 });

  constructor(private readonly deps: ControlApiDeps) {}

  /** Resolves with the port it listens on (port 0: one the system chose). */
  async listen(host: string, port: number, ifname: string): Promise<number> {
    const limits = { ...DEFAULT_API_LIMITS, ...this.deps.limits };
    // Node checks these timeouts every connectionsCheckingInterval (30 s unless told): check often enough to keep them.
    const server = createServer({ headersTimeout: limits.headersTimeoutMs, requestTimeout: limits.requestTimeoutMs, keepAliveTimeout: limits.idleMs, connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs) }, (req, res) => {
      // A handler that throws answers 500 and the hub goes on serving (issue 10, finding 1).
      this.handle(req, res).catch((err: unknown) => {
        this.deps.log.error({ err, url: req.url }, 'control API request failed');
        if (!res.headersSent) reply(res, 500, { error: 'internal error on the hub; see its log' });
        else res.destroy();
      });
    });
    server.maxConnections = limits.total;
    const bySource = new Map<string, number>();
    server.on('connection', (socket: Socket) => {
      const source = socket.remoteAddress ?? '';
      const n = (bySource.get(source) ?? 0) + 1;
      if (n > limits.perSource) {
        socket.destroy();
        return;
      }
      bySource.set(source, n);
      socket.once('close', () => {
        const left = (bySource.get(source) ?? 1) - 1;
        if (left > 0) bySource.set(source, left);
        else bySource.delete(source);
      });
    });
    server.on('upgrade', (req, socket, head) => this.upgrade(req, socket as Socket, head));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(err.code === 'EADDRNOTAVAIL' ? `cannot listen on ${host}:${port}: the hub's tunnel address is not on this machine; is ${ifname} up with ${this.deps.hub.address}?` : err.message)),
      );
      server.listen(port, host, resolve);
    });
    return (server.address() as { port: number }).port;
  }

  close(): Promise<void> {
    return new Promise((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** Who is calling: the node whose tunnel address is the source and whose token matches. */
  private authenticate(req: IncomingMessage, kind: 'agent' | 'relay'): Auth {
    const source = sourceAddress(req);
    const found = this.deps.view.byAddress(source);
    const node = found && !isPending(found) ? found : undefined;
    if (!node) return { status: 403, message: `requests must come through the tunnel from a node's address (${source} is not one)` };
    if (node.kind !== kind || !node.tokenHash) return { status: 403, message: `node "${node.name}" is not ${kind === 'agent' ? 'an agent' : 'a relay'}` };
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7) : '';
    const a = Buffer.from(hashToken(token), 'hex');
    const b = Buffer.from(node.tokenHash, 'hex');
    if (!token || a.length !== b.length || !timingSafeEqual(a, b)) return { status: 401, message: 'missing or wrong token (Authorization: Bearer <token from NAME.agent.json>)' };
    return { node };
  }

  /** A join tunnel's address may only enrol (join-fence.ts): whatever else it asks is refused before anything is looked at. */
  private fenced(req: IncomingMessage): Auth | undefined {
    const source = IpAddress.tryParse(sourceAddress(req));
    const node = source && joinTunnelNode(this.deps.hub, (h) => this.deps.view.byHost(h), source);
    if (!node || joinTunnelRoute(req.method, req.url)) return undefined;
    return { status: 403, message: `${source} is the join tunnel of "${node.name}": it reaches only POST /v1/enrol; once joined, the device talks to the hub from ${node.address}` };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const d = this.deps;
    const fence = this.fenced(req);
    if (fence && 'status' in fence) return reply(res, fence.status, { error: fence.message });
    if (req.method === 'POST' && req.url === '/v1/enrol') {
      return handleEnrol(req, res, { hub: d.hub, nodeAt: (h) => d.view.byHost(h), store: d.store, enrolled: (node) => d.enrolled(node) });
    }
    const auth = this.authenticate(req, 'agent');
    if ('status' in auth) return reply(res, auth.status, { error: auth.message });
    if (req.method === 'GET' && req.url === '/v1/peers') {
      const now = Date.now();
      return reply(res, 200, { settings: d.settingsFor(auth.node), peers: d.view.visibleTo(auth.node).map((c) => peerInfo(d.hub, c, d.seen(c.publicKey), now)) });
    }
    if (req.method === 'GET' && req.url === '/v1/doctor' && d.doctorView) {
      const v = await d.doctorView(auth.node);
      return v ? reply(res, 200, v) : reply(res, 404, { error: `the hub has no status for "${auth.node.name}" yet` });
    }
    if (req.method === 'POST' && req.url === '/v1/report') {
      const body = await readBody(req, 1 << 20).catch(() => undefined);
      if (body === undefined) return reply(res, 413, { error: 'body too large' });
      try {
        const m = decode(agentMessageSchema, body, 'report');
        if (m.type !== 'report') return reply(res, 400, { error: 'only {"type":"report"} is accepted here; the rest goes over the WebSocket' });
        const s = d.sessions.get(auth.node.publicKey);
        if (s) d.sessions.acceptReport(s, m.peers);
        return reply(res, 204);
      } catch (err) {
        return reply(res, 400, { error: (err as Error).message });
      }
    }
    reply(res, 404, { error: `no such endpoint: ${req.method} ${req.url}` });
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const kind = req.url === '/v1/agent' ? 'agent' : req.url === '/v1/relay' ? 'relay' : undefined;
    const auth: Auth = this.fenced(req) ?? (kind ? this.authenticate(req, kind) : { status: 404, message: 'not found' });
    if ('status' in auth) {
      const status = auth.status;
      socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 401 ? 'Unauthorized' : 'Forbidden'}\r\nConnection: close\r\n\r\n`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => (kind === 'agent' ? this.deps.sessions.attach(auth.node, ws) : this.deps.relayConnected(auth.node, ws)));
  }
}
