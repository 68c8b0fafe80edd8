import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../core/log.js';
import { agentMessageSchema, decode, type AgentSettings, type HubMessage, type PeerReport } from '../core/protocol.js';
import { Store, type HubRecord, type NodeRecord } from '../core/store.js';
import { openDevice, type WireGuardDevice } from '../core/wireguard/device.js';
import type { DeviceState, PeerState } from '../core/wireguard/uapi.js';
import { desiredHubPeers, isPending } from './device-peers.js';
import { Relay } from '../relay/relay.js';
import { KernelPath } from '../relay/kernel-path.js';
import { enrolAddress, hashToken } from './directory.js';
import { p2pSubnet } from '../core/configs.js';
import { randomBytes } from 'node:crypto';
import { publicKeySchema } from '../core/protocol.js';
import { peersVisibleTo, peerInfo } from './peer-view.js';

export interface HubOptions {
  dir: string;
  ifname: string;
  log: Logger;
  /**
   * Shortest device read interval. 20 ms keeps the hub's share of a join in the tens of
   * milliseconds; with many peers a read costs more (≈10 ms at 1,000 peers with wireguard-go),
   * so the interval stretches to 5× the last read's cost, keeping polling under ~20% of a core.
   */
  pollMs?: number;
  /** Full resync to every agent: only a safety net, changes are pushed as they happen. */
  resyncMs?: number;
  /** Address for the control API; default: the hub's tunnel address. */
  listenAddress?: string;
  /** Public address the built-in relay binds to; default: the hub endpoint's host when it is an IPv4 address. */
  relayAddress?: string;
  relayPorts?: [number, number];
}

interface AgentSession {
  node: NodeRecord;
  ws: WebSocket;
  reports: Map<string, PeerReport>;
  connectedAt: number;
}

export interface HubStatusNode {
  name: string;
  kind: 'agent' | 'client';
  address: string;
  endpoint: string | null;
  handshakeAgeMs: number | null;
  rxBytes: number;
  txBytes: number;
  /** Agents: whether its control connection is up. Clients: the path to each agent, as that agent reports it. */
  connected?: boolean;
  paths?: { agent: string; path: string; directAfterMs: number | null; reason: string | null; handshakeAgeMs: number | null }[];
}

export class Hub {
  private store!: Store;
  private device!: WireGuardDevice;
  private nodes: NodeRecord[] = [];
  private byKey = new Map<string, NodeRecord>();
  private lastSeen = new Map<string, { endpoint?: string; fresh: boolean }>();
  private device_: DeviceState | undefined;
  private sessions = new Set<AgentSession>();
  private timers: NodeJS.Timeout[] = [];
  private api?: Server;
  private admin?: Server;
  private wss = new WebSocketServer({ noServer: true, maxPayload: 4 << 20 });
  private dataVersion = -1;
  private relay?: Relay;
  private relayAddress?: string;
  /** Relay allocations by pair id (the two public keys, sorted). */
  private relayed = new Map<string, { a: string; b: string; portA: number; portB: number }>();
  private polling = false;
  readonly stats = { polls: 0, pollMsTotal: 0, pushes: 0 };

  constructor(private readonly opts: HubOptions) {}

  /** The hub record is read once per store change, never on the device-poll path. */
  private hubRecord!: HubRecord;

  get settings(): AgentSettings {
    return { peerKeepalive: this.hubRecord.peerKeepalive, staleAfterSec: this.hubRecord.staleAfterSec };
  }

  async start(): Promise<void> {
    this.store = Store.open(this.opts.dir);
    this.device = await openDevice(this.opts.ifname);
    await this.reloadNodes();
    await this.poll();
    const hub = this.hubRecord;
    const host = this.opts.listenAddress ?? hub.address.split('/')[0];
    this.api = createServer((req, res) => void this.handleApi(req, res));
    this.api.on('upgrade', (req, socket, head) => this.handleUpgrade(req, socket as import('node:net').Socket, head));
    await new Promise<void>((resolve, reject) => {
      this.api!.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(err.code === 'EADDRNOTAVAIL' ? `cannot listen on ${host}:${hub.apiPort}: the hub's tunnel address is not on this machine; is ${this.opts.ifname} up with ${hub.address}?` : err.message)),
      );
      this.api!.listen(hub.apiPort, host, resolve);
    });
    const endpointHost = hub.endpoint.split(':')[0];
    this.relayAddress = this.opts.relayAddress ?? (/^\d{1,3}(\.\d{1,3}){3}$/.test(endpointHost) ? endpointHost : undefined);
    if (this.relayAddress) {
      const [portMin, portMax] = this.opts.relayPorts ?? [52000, 52999];
      this.relay = new Relay({ address: this.relayAddress, portMin, portMax, kernel: await KernelPath.create(this.relayAddress), onError: (err) => this.opts.log.warn({ err }, 'relay') });
    }
    const sock = join(this.opts.dir, 'hub.sock');
    rmSync(sock, { force: true });
    this.admin = createServer((req, res) => this.handleAdmin(req, res));
    await new Promise<void>((resolve) => this.admin!.listen(sock, resolve));
    chmodSync(sock, 0o600);
    this.schedulePoll();
    this.every(250, () => this.watchStore());
    this.every(this.opts.resyncMs ?? 60_000, () => this.sessions.forEach((s) => this.sendSnapshot(s)));
    this.opts.log.info({ api: `${host}:${hub.apiPort}`, device: this.device.kind, nodes: this.nodes.length }, 'hub running');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.relay?.close();
    clearTimeout(this.pollTimer);
    this.timers.forEach(clearInterval);
    for (const s of this.sessions) s.ws.terminate();
    await Promise.all([this.api, this.admin].map((srv) => srv && new Promise((r) => srv.close(() => r(undefined)))));
    rmSync(join(this.opts.dir, 'hub.sock'), { force: true });
    this.store.close();
  }

  private pollTimer?: NodeJS.Timeout;
  private lastPollCostMs = 0;

  private schedulePoll(): void {
    if (this.stopped) return;
    const interval = Math.min(250, Math.max(this.opts.pollMs ?? 20, 5 * this.lastPollCostMs));
    this.pollTimer = setTimeout(() => {
      this.poll()
        .catch((err: unknown) => this.opts.log.error({ err }, 'device read failed'))
        .finally(() => this.schedulePoll());
    }, interval);
  }

  private stopped = false;

  private every(ms: number, fn: () => unknown): void {
    this.timers.push(setInterval(() => void Promise.resolve(fn()).catch((err: unknown) => this.opts.log.error({ err }, 'periodic task failed')), ms));
  }

  /** Keeps the device's peers equal to the store; notices nodes added or removed while running. */
  private async watchStore(): Promise<void> {
    const v = this.store.dataVersion();
    if (v !== this.dataVersion) await this.reloadNodes();
  }

  private async reloadNodes(): Promise<void> {
    this.dataVersion = this.store.dataVersion();
    this.hubRecord = this.store.hub();
    const before = new Map(this.byKey);
    this.nodes = this.store.nodes();
    this.byKey = new Map(this.nodes.map((n) => [n.publicKey, n]));
    const dev = await this.device.get();
    const onDevice = new Map(dev.peers.map((p) => [p.publicKey, p]));
    const desired = desiredHubPeers(this.nodes, this.hubRecord, Date.now());
    const wanted = new Set(desired.map((p) => p.publicKey));
    const sameIps = (a: string[], b: string[]) => a.slice().sort().join() === b.slice().sort().join();
    const peers = [
      ...desired.filter((d) => !onDevice.has(d.publicKey) || !sameIps(onDevice.get(d.publicKey)!.allowedIps, d.allowedIps)),
      ...dev.peers.filter((p) => !wanted.has(p.publicKey)).map((p) => ({ publicKey: p.publicKey, remove: true })),
    ];
    if (peers.length) await this.device.set({ peers });
    const removed = [...before.values()].filter((n) => !this.byKey.has(n.publicKey));
    const added = this.nodes.filter((n) => !before.has(n.publicKey));
    if (removed.length || added.length) this.opts.log.info({ added: added.map((n) => n.name), removed: removed.map((n) => n.name) }, 'nodes changed');
    for (const s of [...this.sessions]) {
      if (!this.byKey.has(s.node.publicKey)) {
        s.ws.close(4003, 'node removed');
        this.sessions.delete(s);
        continue;
      }
      for (const n of removed) this.send(s, { type: 'peer-removed', publicKey: n.publicKey });
      for (const n of added) if (peersVisibleTo(s.node, this.nodes).includes(n)) this.send(s, { type: 'peer', peer: peerInfo(n, undefined, Date.now()) });
    }
  }

  /** Reads the device and pushes what changed: a client's endpoint, or whether it is fresh. */
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    const t0 = performance.now();
    try {
      const dev = await this.device.get();
      this.device_ = dev;
      const now = Date.now();
      const staleMs = this.hubRecord.staleAfterSec * 1000;
      for (const p of dev.peers) {
        const node = this.byKey.get(p.publicKey);
        if (!node) continue;
        const fresh = p.lastHandshakeMs > 0 && now - p.lastHandshakeMs <= staleMs;
        const prev = this.lastSeen.get(p.publicKey);
        if (prev && prev.endpoint === p.endpoint && prev.fresh === fresh) continue;
        this.lastSeen.set(p.publicKey, { endpoint: p.endpoint, fresh });
        if (p.endpoint && prev?.endpoint !== p.endpoint) {
          this.store.setObservedEndpoint(p.publicKey, p.endpoint);
          // A relayed node that roamed: its allocation accepts the new address (its port is re-learned from a handshake).
          for (const [id, a] of this.relayed) if (a.a === p.publicKey || a.b === p.publicKey) {
            try {
              this.relay?.updateIp(id, p.publicKey, p.endpoint.replace(/:\d+$/, ''));
            } catch {
              this.relayed.delete(id);
            }
          }
        }
        if (prev || p.endpoint) this.pushPeer(node, p, now);
        if (node.kind === 'agent' && p.endpoint) this.relayEarly(node);
      }
    } finally {
      this.lastPollCostMs = performance.now() - t0;
      this.stats.polls++;
      this.stats.pollMsTotal += this.lastPollCostMs;
      this.polling = false;
    }
  }

  private pushPeer(client: NodeRecord, seen: PeerState, now: number): void {
    for (const s of this.sessions) {
      if (s.node.publicKey === client.publicKey || !peersVisibleTo(s.node, this.nodes).includes(client)) continue;
      this.send(s, { type: 'peer', peer: peerInfo(client, seen, now) });
      this.stats.pushes++;
    }
  }

  private send(s: AgentSession, m: HubMessage): void {
    if (s.ws.readyState === s.ws.OPEN) s.ws.send(JSON.stringify(m));
  }

  private sendSnapshot(s: AgentSession): void {
    const now = Date.now();
    const seen = new Map((this.device_?.peers ?? []).map((p) => [p.publicKey, p]));
    this.send(s, { type: 'snapshot', settings: this.settings, peers: peersVisibleTo(s.node, this.nodes).map((c) => peerInfo(c, seen.get(c.publicKey), now)) });
  }

  // ---- control API (tunnel address only) ------------------------------------------------------

  /** Who is calling: the node whose tunnel address is the source (cryptokey routing proves it) and whose token matches. */
  private authenticate(req: IncomingMessage): { node: NodeRecord } | { status: number; message: string } {
    const source = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const node = this.nodes.find((n) => n.address === source && !isPending(n));
    if (!node) return { status: 403, message: `requests must come through the tunnel from a node's address (${source} is not one)` };
    if (node.kind !== 'agent' || !node.tokenHash) return { status: 403, message: `node "${node.name}" is not an agent` };
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7) : '';
    const a = Buffer.from(hashToken(token), 'hex');
    const b = Buffer.from(node.tokenHash, 'hex');
    if (!token || a.length !== b.length || !timingSafeEqual(a, b)) return { status: 401, message: 'missing or wrong token (Authorization: Bearer <token from NAME.agent.json>)' };
    return { node };
  }

  private async handleApi(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'POST' && req.url === '/v1/enrol') return this.handleEnrol(req, res);
    const auth = this.authenticate(req);
    if ('status' in auth) return reply(res, auth.status, { error: auth.message });
    if (req.method === 'GET' && req.url === '/v1/peers') {
      const now = Date.now();
      const seen = new Map((this.device_?.peers ?? []).map((p) => [p.publicKey, p]));
      return reply(res, 200, { settings: this.settings, peers: peersVisibleTo(auth.node, this.nodes).map((c) => peerInfo(c, seen.get(c.publicKey), now)) });
    }
    if (req.method === 'POST' && req.url === '/v1/report') {
      const body = await readBody(req, 1 << 20).catch(() => undefined);
      if (body === undefined) return reply(res, 413, { error: 'body too large' });
      try {
        const m = decode(agentMessageSchema, body, 'report');
        this.acceptReport(auth.node, m.peers);
        return reply(res, 204);
      } catch (err) {
        return reply(res, 400, { error: (err as Error).message });
      }
    }
    reply(res, 404, { error: `no such endpoint: ${req.method} ${req.url}` });
  }

  /**
   * A device joining with a code. It reaches us through a tunnel made with the code's one-time key,
   * so WireGuard has already proved both sides: the device holds the code, and we hold the hub key
   * the code names. We answer on that tunnel, then swap the one-time key for the device's own.
   */
  private async handleEnrol(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const source = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const p2p = p2pSubnet(this.hubRecord);
    const node = this.nodes.find((n) => n.enrolKey && enrolAddress(this.hubRecord.proxiedSubnet, p2p, n.address) === source);
    if (!node) return reply(res, 403, { error: 'enrolment must come through the tunnel of a join code' });
    if (node.enrolUsed) return reply(res, 409, { error: `this join code was already used (node "${node.name}" is enrolled); ask for a new one` });
    if (Date.now() > (node.enrolExpiresAt ?? 0)) return reply(res, 410, { error: `this join code expired at ${new Date(node.enrolExpiresAt ?? 0).toISOString()}; ask for a new one` });
    const body = await readBody(req, 4096).catch(() => undefined);
    let publicKey: string;
    try {
      publicKey = publicKeySchema.parse((JSON.parse(body ?? '') as { publicKey?: unknown }).publicKey);
    } catch {
      return reply(res, 400, { error: 'body must be {"publicKey": "<the device\'s WireGuard public key>"}' });
    }
    const token = randomBytes(32).toString('base64url');
    try {
      this.store.completeEnrolment(node.name, publicKey, hashToken(token));
    } catch (err) {
      return reply(res, 409, { error: (err as Error).message });
    }
    const hub = this.hubRecord;
    res.on('finish', () => {
      // Give the reply time to cross the one-time tunnel before its key loses the node's address.
      setTimeout(() => void this.reloadNodes().catch((err: unknown) => this.opts.log.error({ err }, 'reload after enrolment failed')), 200);
    });
    this.opts.log.info({ node: node.name }, 'node enrolled');
    reply(res, 200, {
      name: node.name,
      address: `${node.address}/${hub.address.split('/')[1]}`,
      listenPort: node.listenPort,
      token,
      hub: { publicKey: hub.publicKey, endpoint: hub.endpoint, allowedIps: [`${hub.address.split('/')[0]}/32`, hub.proxiedSubnet], keepalive: hub.agentHubKeepalive, apiUrl: `http://${hub.address.split('/')[0]}:${hub.apiPort}` },
    });
  }

  private handleUpgrade(req: IncomingMessage, socket: import('node:net').Socket, head: Buffer): void {
    const auth = this.authenticate(req);
    if ('status' in auth || req.url !== '/v1/agent') {
      const status = 'status' in auth ? auth.status : 404;
      socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 401 ? 'Unauthorized' : 'Forbidden'}\r\nConnection: close\r\n\r\n`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const session: AgentSession = { node: auth.node, ws, reports: new Map(), connectedAt: Date.now() };
      // One session per agent: a reconnect replaces the old one.
      for (const s of this.sessions) if (s.node.publicKey === auth.node.publicKey) (s.ws.terminate(), this.sessions.delete(s));
      this.sessions.add(session);
      this.opts.log.info({ agent: auth.node.name }, 'agent connected');
      ws.on('message', (data) => {
        try {
          const m = decode(agentMessageSchema, data.toString(), `message from ${auth.node.name}`);
          this.acceptReport(auth.node, m.peers, session);
        } catch (err) {
          this.opts.log.warn({ agent: auth.node.name, err: (err as Error).message }, 'malformed message ignored');
        }
      });
      ws.on('close', () => this.sessions.delete(session));
      ws.on('error', () => this.sessions.delete(session));
      this.sendSnapshot(session);
      this.relayEarly(auth.node);
    });
  }

  private acceptReport(agent: NodeRecord, peers: PeerReport[], session?: AgentSession): void {
    const s = session ?? [...this.sessions].find((x) => x.node.publicKey === agent.publicKey);
    if (!s) return;
    s.reports.clear();
    for (const p of peers) {
      const other = this.byKey.get(p.publicKey);
      if (!other) continue;
      s.reports.set(p.publicKey, p);
      // Two agents that cannot go direct get a relay pair; a plain client cannot move, it has its proxied config.
      if (p.path === 'impossible' && other.kind === 'agent') void this.relayPair(agent, other).catch((err: unknown) => this.opts.log.warn({ err }, 'relay allocation failed'));
    }
  }

  /**
   * Don't waste an attempt that cannot work: an agent whose NAT changed its port (observed port ≠
   * the listen port its config sets) maps per destination, and two such agents can never meet
   * directly. Such pairs get the relay at once.
   */
  private relayEarly(x: NodeRecord): void {
    const seen = new Map((this.device_?.peers ?? []).map((p) => [p.publicKey, p.endpoint]));
    const portChanged = (n: NodeRecord) => {
      const ep = seen.get(n.publicKey);
      return n.kind === 'agent' && ep !== undefined && n.listenPort !== null && Number(ep.split(':').pop()) !== n.listenPort;
    };
    if (!portChanged(x)) return;
    for (const y of peersVisibleTo(x, this.nodes)) {
      if (portChanged(y)) void this.relayPair(x, y).catch((err: unknown) => this.opts.log.warn({ err }, 'relay allocation failed'));
    }
  }

  /** Allocates (or re-announces) a relay pair and tells both agents where to send. */
  private async relayPair(x: NodeRecord, y: NodeRecord): Promise<void> {
    if (!this.relay || !this.relayAddress) return;
    const id = [x.publicKey, y.publicKey].sort().join('|');
    const seen = new Map((this.device_?.peers ?? []).map((p) => [p.publicKey, p.endpoint]));
    const ipOf = (n: NodeRecord) => seen.get(n.publicKey)?.replace(/:\d+$/, '');
    let alloc = this.relayed.get(id);
    if (!alloc || !this.relay.has(id)) {
      const ipX = ipOf(x);
      const ipY = ipOf(y);
      if (!ipX || !ipY) return;
      const ports = await this.relay.allocate(id, { publicKey: x.publicKey, ip: ipX }, { publicKey: y.publicKey, ip: ipY });
      alloc = { a: x.publicKey, b: y.publicKey, ...ports };
      this.relayed.set(id, alloc);
      this.opts.log.info({ pair: [x.name, y.name], ports }, 'relay allocated');
    }
    for (const s of this.sessions) {
      if (s.node.publicKey === alloc.a) this.send(s, { type: 'relay', publicKey: alloc.b, endpoint: `${this.relayAddress}:${alloc.portA}` });
      if (s.node.publicKey === alloc.b) this.send(s, { type: 'relay', publicKey: alloc.a, endpoint: `${this.relayAddress}:${alloc.portB}` });
    }
  }

  // ---- admin socket (local shell only) --------------------------------------------------------

  status(): HubStatusNode[] {
    const now = Date.now();
    const seen = new Map((this.device_?.peers ?? []).map((p) => [p.publicKey, p]));
    return this.nodes.map((n) => {
      const p = seen.get(n.publicKey);
      const row: HubStatusNode = {
        name: n.name,
        kind: n.kind,
        address: n.address,
        endpoint: p?.endpoint ?? null,
        handshakeAgeMs: p && p.lastHandshakeMs > 0 ? now - p.lastHandshakeMs : null,
        rxBytes: p?.rxBytes ?? 0,
        txBytes: p?.txBytes ?? 0,
      };
      if (n.kind === 'agent') row.connected = [...this.sessions].some((s) => s.node.publicKey === n.publicKey);
      {
        row.paths = [...this.sessions]
          .map((s) => ({ s, r: s.reports.get(n.publicKey) }))
          .filter((x) => x.r)
          .map(({ s, r }) => ({ agent: s.node.name, path: r!.path, directAfterMs: r!.directAfterMs, reason: r!.reason, handshakeAgeMs: r!.handshakeAgeMs }));
      }
      return row;
    });
  }

  private handleAdmin(req: IncomingMessage, res: ServerResponse): void {
    if (req.method === 'GET' && req.url === '/v1/status') {
      return reply(res, 200, {
        hub: { interface: this.opts.ifname, device: this.device.kind, agentsConnected: this.sessions.size, polls: this.stats.polls, meanPollMs: this.stats.polls ? this.stats.pollMsTotal / this.stats.polls : 0, pushes: this.stats.pushes },
        nodes: this.status(),
      });
    }
    reply(res, 404, { error: 'not found' });
  }
}

function reply(res: ServerResponse, status: number, body?: unknown): void {
  res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json' });
  res.end(body === undefined ? undefined : JSON.stringify(body));
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
