import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../core/log.js';
import { Endpoint } from '../core/net/endpoint.js';
import { agentMessageSchema, decode, type AgentMessage, type AgentSettings, type HubMessage, type PeerReport } from '../core/protocol.js';
import { openDevice, type WireGuardDevice } from '../core/wireguard/device.js';
import type { DeviceState, PeerState } from '../core/wireguard/uapi.js';
import { KernelPath } from '../relay/kernel-path.js';
import { BuiltinRelay } from './builtin-relay.js';
import { coalesced } from './coalesce.js';
import { agentHubAllowedIps } from './configs.js';
import { hashToken } from './directory.js';
import { DirectoryView, isEmptyDelta, type ViewDelta } from './directory-view.js';
import { handleEnrol } from './enrol-api.js';
import { EndpointWriter } from './endpoint-writer.js';
import { ForwardFilter } from './forward-filter.js';
import { readBody, reply, sourceAddress } from './http.js';
import { emptyFacts, forgetLearned, observe, seenElsewhere, withNetwork, type NatFacts } from './nat-facts.js';
import { PairPaths } from './pair-paths.js';
import { PeerSync } from './peer-sync.js';
import { canSee, peerInfo } from './peer-view.js';
import { RelayPool } from './relay-pool.js';
import { nodeStatus } from './status.js';
import { isPending, type HubSettings, type NodeRecord } from './store/model.js';
import { openStore, type DirectoryStore } from './store/store.js';
export type { HubStatusNode } from './status.js';
import { acceptRelay } from './remote-relay.js';

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
  /**
   * Full diff of the device against the directory: a safety net (changes are applied as the
   * store reports them), and what retires join keys whose grace ran out. At 10,000 peers one
   * costs a device read (≈90 ms) and a pass over the nodes.
   */
  deviceResyncMs?: number;
  /** Address for the control API; default: the hub's tunnel address. */
  listenAddress?: string;
  /** Public address the built-in relay binds to; default: the hub endpoint's host when it is an IPv4 address. */
  relayAddress?: string;
  relayPorts?: [number, number];
  /** No relay inside the hub: only relays that register (`wgp2p relay run`). */
  noBuiltinRelay?: boolean;
}

interface AgentSession {
  node: NodeRecord;
  ws: WebSocket;
  /** Set once the agent said hello: until then its pairs wait. */
  ready: boolean;
  reports: Map<string, PeerReport>;
  /** What this agent was told about each peer it may see (a signature, to push only changes). */
  visible: Map<string, string>;
  proxied: boolean;
}


/** After a network change without a new endpoint (only the LAN changed), re-decide the node's pairs after this. */
const NETWORK_SETTLE_MS = 300;

export class Hub {
  private store!: DirectoryStore;
  private device!: WireGuardDevice;
  private readonly view = new DirectoryView();
  private peerSync!: PeerSync;
  private endpoints!: EndpointWriter;
  private unsubscribe?: () => void;
  /** Set by the safety net: the next refresh diffs the whole device. */
  private fullSyncNext = true;
  private lastSeen = new Map<string, { endpoint?: string; fresh: boolean }>();
  private device_: DeviceState | undefined;
  private sessions = new Map<string, AgentSession>();
  private facts = new Map<string, NatFacts>();
  private pendingNetwork = new Map<string, NodeJS.Timeout>();
  private timers: NodeJS.Timeout[] = [];
  private api?: Server;
  private admin?: Server;
  private wss = new WebSocketServer({ noServer: true, maxPayload: 4 << 20 });
  private builtin?: BuiltinRelay;
  private relays!: RelayPool;
  private pairs!: PairPaths;
  private polling = false;
  private stopped = false;
  private forwardFilter?: ForwardFilter;
  readonly stats = { polls: 0, pollMsTotal: 0, pushes: 0 };

  constructor(private readonly opts: HubOptions) {}

  /** The hub's settings never change while it runs: read once at start. */
  private hubRecord!: HubSettings;

  private settingsFor(n: NodeRecord): AgentSettings {
    const h = this.hubRecord;
    return { peerKeepalive: h.peerKeepalive, staleAfterSec: h.staleAfterSec, hubPublicKey: h.publicKey, hubAllowedIps: agentHubAllowedIps(h), proxied: n.proxied };
  }

  async start(): Promise<void> {
    this.store = await openStore(this.opts.dir);
    this.hubRecord = await this.store.hub();
    this.device = await openDevice(this.opts.ifname);
    this.peerSync = new PeerSync(this.device, this.hubRecord, this.opts.log);
    this.endpoints = new EndpointWriter({ write: (batch) => this.store.recordObservations(batch), log: this.opts.log });
    this.relays = new RelayPool((relayId) => this.pairs.relayGone(relayId));
    this.pairs = new PairPaths({
      node: (k) => {
        const n = this.view.byKey(k);
        return n && { key: k, name: n.name, proxied: n.proxied };
      },
      connected: (k) => this.sessions.get(k)?.ready === true,
      send: (k, cmd) => {
        const s = this.sessions.get(k);
        if (s) this.send(s, cmd);
      },
      facts: (k) => this.factsOf(k),
      setFacts: (k, f) => this.facts.set(k, f),
      allocateRelay: async (a, b) => {
        const ip = (k: string) => this.factsOf(k).publicIp;
        const ipA = ip(a);
        const ipB = ip(b);
        if (!ipA || !ipB) return undefined;
        const alloc = await this.relays.allocate({ publicKey: a, ip: ipA }, { publicKey: b, ip: ipB });
        if (alloc) this.opts.log.info({ pair: [this.view.byKey(a)?.name, this.view.byKey(b)?.name], relay: alloc.relay, forA: alloc.forA, forB: alloc.forB }, 'relay allocated');
        return alloc && { relayId: alloc.relayId, forA: alloc.forA, forB: alloc.forB };
      },
      relayAlive: (g) => this.relays.alive(g.relayId),
      releaseRelay: (g) => this.relays.release(g.relayId),
      log: this.opts.log,
    });
    this.forwardFilter = await ForwardFilter.create(this.opts.ifname);
    if (!this.forwardFilter) this.opts.log.warn('nftables is not usable (not root?): groups are not enforced for traffic the hub forwards');
    // The whole directory onto the interface and into the group filter (a failure here stops
    // `hub run`); later changes come through refresh().
    await this.applyChanges();
    await this.applyFilter();
    await this.poll();
    const hub = this.hubRecord;
    const host = this.opts.listenAddress ?? hub.address.address.toString();
    this.api = createServer((req, res) => void this.handleApi(req, res));
    this.api.on('upgrade', (req, socket, head) => this.handleUpgrade(req, socket as Socket, head));
    await new Promise<void>((resolve, reject) => {
      this.api!.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(err.code === 'EADDRNOTAVAIL' ? `cannot listen on ${host}:${hub.apiPort}: the hub's tunnel address is not on this machine; is ${this.opts.ifname} up with ${hub.address}?` : err.message)),
      );
      this.api!.listen(hub.apiPort, host, resolve);
    });
    const relayAddress = this.opts.relayAddress ?? (hub.endpoint.address?.family === 4 ? hub.endpoint.address.toString() : undefined);
    if (relayAddress && !this.opts.noBuiltinRelay) {
      const [portMin, portMax] = this.opts.relayPorts ?? [52000, 52999];
      this.builtin = new BuiltinRelay({
        address: relayAddress,
        portMin,
        portMax,
        kernel: await KernelPath.create(relayAddress),
        onError: (err) => this.opts.log.warn({ err }, 'relay'),
        onLatched: (_id, key, endpoint) => this.relayLatched(key, endpoint),
        onReleased: (id, reason) => reason === 'idle' && this.relays.released(id),
      });
      this.relays.add(this.builtin);
    }
    const sock = join(this.opts.dir, 'hub.sock');
    rmSync(sock, { force: true });
    this.admin = createServer((req, res) => void this.handleAdmin(req, res));
    await new Promise<void>((resolve) => this.admin!.listen(sock, resolve));
    chmodSync(sock, 0o600);
    this.schedulePoll();
    this.unsubscribe = this.store.subscribe(() => void this.refresh());
    this.every(this.opts.resyncMs ?? 60_000, () => this.sessions.forEach((s) => this.sendSnapshot(s)));
    this.every(this.opts.deviceResyncMs ?? 60_000, () => {
      this.fullSyncNext = true;
      return this.refresh();
    });
    this.opts.log.info({ api: `${host}:${hub.apiPort}`, device: this.device.kind, nodes: this.view.size, relay: relayAddress ?? null }, 'hub running');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.pairs.close();
    await this.builtin?.close();
    clearTimeout(this.pollTimer);
    this.timers.forEach(clearInterval);
    this.pendingNetwork.forEach(clearTimeout);
    for (const s of this.sessions.values()) s.ws.terminate();
    await Promise.all([this.api, this.admin].map((srv) => srv && new Promise((r) => srv.close(() => r(undefined)))));
    rmSync(join(this.opts.dir, 'hub.sock'), { force: true });
    await this.endpoints.close();
    await this.store.close();
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

  private every(ms: number, fn: () => unknown): void {
    this.timers.push(setInterval(() => void Promise.resolve(fn()).catch((err: unknown) => this.opts.log.error({ err }, 'periodic task failed')), ms));
  }

  private factsOf(key: string): NatFacts {
    let f = this.facts.get(key);
    if (!f) {
      f = emptyFacts(this.view.byKey(key)?.listenPort ?? null);
      this.facts.set(key, f);
    }
    return f;
  }

  private othersOnIp(key: string, ip: string | null): NatFacts[] {
    if (ip === null) return [];
    return [...this.facts.entries()].filter(([k, f]) => k !== key && f.publicIp === ip).map(([, f]) => f);
  }

  private relayLatched(key: string, endpoint: string): void {
    const before = this.factsOf(key);
    const after = seenElsewhere(before, endpoint, 'the relay');
    if (after.mapping !== before.mapping) this.opts.log.info({ node: this.view.byKey(key)?.name, mapping: after.mapping, why: after.mappingWhy }, 'NAT mapping learned');
    this.facts.set(key, after);
  }

  /**
   * Applies what changed in the store since the view's revision, one batch at a time: the
   * device's peers of those nodes, the forward filter, the agents that may see them, the pairs.
   * Called when the store says it changed, after an enrolment, and by the safety net.
   */
  private readonly refresh = coalesced(() =>
    this.applyChanges().catch((err: unknown) => {
      this.opts.log.error({ err }, 'applying directory changes failed; retrying at the next change or resync');
      this.fullSyncNext = true;
    }),
  );

  private async applyChanges(): Promise<void> {
    const changes = await this.store.changesSince(this.view.revision);
    const delta = this.view.apply(changes);
    const full = this.fullSyncNext || delta.reset;
    this.fullSyncNext = false;
    if (full) await this.peerSync.full(this.view.all());
    if (full) void this.updateFilter();
    if (isEmptyDelta(delta)) return;
    if (!full) await this.peerSync.apply(delta);
    if (!full) void this.updateFilter();
    const names = (ns: NodeRecord[]) => (ns.length <= 20 ? ns.map((n) => n.name) : `${ns.length} nodes`);
    if (delta.removed.length || delta.added.length) this.opts.log.info({ added: names(delta.added), removed: names(delta.removed) }, 'nodes changed');
    for (const n of delta.removed) {
      this.facts.delete(n.publicKey);
      this.lastSeen.delete(n.publicKey);
    }
    this.updateSessions(delta);
    if (touchesPairs(delta)) this.pairs.sync(this.view.agentPairs());
    for (const { before, after: n } of delta.changed) {
      if (before.proxied !== n.proxied) this.pairs.reevaluate(n.publicKey, n.proxied ? `${n.name} chose proxied mode` : `${n.name} left proxied mode`);
    }
  }

  /**
   * The group filter is rebuilt whole: O(group memberships), at most one rebuild at a time and
   * one more for everything that changed meanwhile. Changes do not wait for it: measured at
   * 10,000 nodes in one group a rebuild costs 30 ms of ours and 0.18 s of nft, but with every
   * client in 100 groups (1.8 million set elements) 3 s and 19 s, and agents must not wait that
   * long to hear of a peer. Until it lands, a new node's traffic through the hub is dropped (it
   * is in no group's set) and a node that left a group keeps that group's reach.
   */
  private readonly applyFilter = coalesced(async () => {
    await this.forwardFilter?.apply(joined(this.view.all()));
  });

  private updateFilter(): Promise<void> {
    return this.applyFilter().catch((err: unknown) => this.opts.log.error({ err }, 'updating the group filter failed; retrying at the next change or resync'));
  }

  /** Tells each connected agent about the changed nodes it may now see, see differently, or no longer see. */
  private updateSessions(delta: ViewDelta): void {
    const now = Date.now();
    const seen = this.seen();
    const ownChange = new Map(delta.changed.map((c) => [c.after.publicKey, c.before]));
    for (const s of [...this.sessions.values()]) {
      const node = this.view.byKey(s.node.publicKey);
      if (!node || isPending(node)) {
        s.ws.close(4003, 'node removed');
        this.sessions.delete(s.node.publicKey);
        continue;
      }
      s.node = node;
      if (s.proxied !== node.proxied) {
        s.proxied = node.proxied;
        this.sendSnapshot(s);
        continue;
      }
      const before = ownChange.get(node.publicKey);
      if (delta.reset || (before && !sameGroups(before, node))) {
        this.pushVisible(s, seen, now);
        continue;
      }
      for (const n of delta.removed) this.pushOne(s, n.publicKey, undefined, seen, now);
      for (const c of delta.changed) {
        if (c.before.publicKey !== c.after.publicKey) this.pushOne(s, c.before.publicKey, undefined, seen, now);
        this.pushOne(s, c.after.publicKey, c.after, seen, now);
      }
      for (const n of delta.added) this.pushOne(s, n.publicKey, n, seen, now);
    }
  }

  /** Tells an agent about peers it may now see, changed, or may no longer see (all of them: its own groups changed). */
  private pushVisible(s: AgentSession, seen: Map<string, PeerState>, now: number): void {
    const next = new Map(this.view.visibleTo(s.node).map((n) => [n.publicKey, signature(n)] as const));
    for (const k of s.visible.keys()) if (!next.has(k)) this.send(s, { type: 'peer-removed', publicKey: k });
    for (const [k, sig] of next) if (s.visible.get(k) !== sig) this.send(s, { type: 'peer', peer: peerInfo(this.view.byKey(k)!, seen.get(k), now) });
    s.visible = next;
  }

  /** The same for one peer: `n` is its record now, undefined if it is gone. */
  private pushOne(s: AgentSession, key: string, n: NodeRecord | undefined, seen: Map<string, PeerState>, now: number): void {
    const had = s.visible.get(key);
    if (!n || !canSee(s.node, n)) {
      if (had === undefined) return;
      s.visible.delete(key);
      this.send(s, { type: 'peer-removed', publicKey: key });
      return;
    }
    const sig = signature(n);
    if (had === sig) return;
    s.visible.set(key, sig);
    this.send(s, { type: 'peer', peer: peerInfo(n, seen.get(key), now) });
  }

  /** The last device read by public key, built at most once per read and only when a push needs it. */
  private seenCache?: { dev: DeviceState; byKey: Map<string, PeerState> };
  private seen(): Map<string, PeerState> {
    const dev = this.device_;
    if (!dev) return new Map();
    if (this.seenCache?.dev !== dev) this.seenCache = { dev, byKey: new Map(dev.peers.map((p) => [p.publicKey, p])) };
    return this.seenCache.byKey;
  }

  /** Reads the device and pushes what changed: a node's endpoint, or whether it is fresh. */
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
        const node = this.view.byKey(p.publicKey);
        if (!node) continue;
        const fresh = p.lastHandshakeMs > 0 && now - p.lastHandshakeMs <= staleMs;
        const prev = this.lastSeen.get(p.publicKey);
        if (prev && prev.endpoint === p.endpoint && prev.fresh === fresh) continue;
        this.lastSeen.set(p.publicKey, { endpoint: p.endpoint, fresh });
        if (p.endpoint && prev?.endpoint !== p.endpoint) this.endpointChanged(node, p.endpoint);
        if (prev || p.endpoint) this.pushPeer(node, p, now);
      }
    } finally {
      this.lastPollCostMs = performance.now() - t0;
      this.stats.polls++;
      this.stats.pollMsTotal += this.lastPollCostMs;
      this.polling = false;
    }
  }

  private endpointChanged(node: NodeRecord, endpoint: string): void {
    // Recorded for client configs by the writer, off this path: the poll never waits for the store.
    const parsed = Endpoint.tryParse(endpoint);
    if (parsed) this.endpoints.record(node.publicKey, parsed);
    if (node.kind !== 'agent') return;
    const before = this.factsOf(node.publicKey);
    const ip = endpoint.slice(0, endpoint.lastIndexOf(':'));
    const after = observe(before, endpoint, this.othersOnIp(node.publicKey, ip));
    this.facts.set(node.publicKey, after);
    if (before.publicIp !== null && before.publicIp !== ip) this.relays.updateIp(node.publicKey, ip);
    const pending = this.pendingNetwork.get(node.publicKey);
    clearTimeout(pending);
    this.pendingNetwork.delete(node.publicKey);
    this.pairs.changed(node.publicKey, pending ? `${node.name} changed network` : `${node.name}'s endpoint changed`);
  }

  private pushPeer(node: NodeRecord, seen: PeerState, now: number): void {
    for (const s of this.sessions.values()) {
      if (!s.visible.has(node.publicKey)) continue;
      this.send(s, { type: 'peer', peer: peerInfo(node, seen, now) });
      this.stats.pushes++;
    }
  }

  private send(s: AgentSession, m: HubMessage): void {
    if (s.ws.readyState === s.ws.OPEN) s.ws.send(JSON.stringify(m));
  }

  private sendSnapshot(s: AgentSession): void {
    const now = Date.now();
    const seen = this.seen();
    const visible = this.view.visibleTo(s.node);
    s.visible = new Map(visible.map((n) => [n.publicKey, signature(n)] as const));
    this.send(s, { type: 'snapshot', settings: this.settingsFor(s.node), peers: visible.map((c) => peerInfo(c, seen.get(c.publicKey), now)) });
  }

  // ---- control API (tunnel address only) ------------------------------------------------------

  /** Who is calling: the node whose tunnel address is the source (cryptokey routing proves it) and whose token matches. */
  private authenticate(req: IncomingMessage, kind: 'agent' | 'relay'): { node: NodeRecord } | { status: number; message: string } {
    const source = sourceAddress(req);
    const found = this.view.byAddress(source);
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

  private async handleApi(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'POST' && req.url === '/v1/enrol') {
      return handleEnrol(req, res, {
        hub: this.hubRecord,
        nodeAt: (h) => this.view.byHost(h),
        store: this.store,
        enrolled: async (node) => {
          this.opts.log.info({ node: node.name }, 'node enrolled');
          await this.refresh();
        },
      });
    }
    const auth = this.authenticate(req, 'agent');
    if ('status' in auth) return reply(res, auth.status, { error: auth.message });
    if (req.method === 'GET' && req.url === '/v1/peers') {
      const now = Date.now();
      const seen = this.seen();
      return reply(res, 200, { settings: this.settingsFor(auth.node), peers: this.view.visibleTo(auth.node).map((c) => peerInfo(c, seen.get(c.publicKey), now)) });
    }
    if (req.method === 'POST' && req.url === '/v1/report') {
      const body = await readBody(req, 1 << 20).catch(() => undefined);
      if (body === undefined) return reply(res, 413, { error: 'body too large' });
      try {
        const m = decode(agentMessageSchema, body, 'report');
        const s = this.sessions.get(auth.node.publicKey);
        if (m.type !== 'report') return reply(res, 400, { error: 'only {"type":"report"} is accepted here; the rest goes over the WebSocket' });
        if (s) this.acceptReport(s, m.peers);
        return reply(res, 204);
      } catch (err) {
        return reply(res, 400, { error: (err as Error).message });
      }
    }
    reply(res, 404, { error: `no such endpoint: ${req.method} ${req.url}` });
  }

  private handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const kind = req.url === '/v1/agent' ? 'agent' : req.url === '/v1/relay' ? 'relay' : undefined;
    const auth = kind ? this.authenticate(req, kind) : { status: 404, message: 'not found' };
    if ('status' in auth) {
      const status = auth.status;
      socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 401 ? 'Unauthorized' : 'Forbidden'}\r\nConnection: close\r\n\r\n`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => (kind === 'agent' ? this.agentSession(auth.node, ws) : acceptRelay(auth.node.name, ws, this.relays, (key, endpoint) => this.relayLatched(key, endpoint), this.opts.log)));
  }

  private agentSession(node: NodeRecord, ws: WebSocket): void {
    const key = node.publicKey;
    // One session per agent: a reconnect replaces the old one.
    const old = this.sessions.get(key);
    if (old) old.ws.terminate();
    const session: AgentSession = { node, ws, ready: false, reports: new Map(), visible: new Map(), proxied: node.proxied };
    this.sessions.set(key, session);
    this.opts.log.info({ agent: node.name }, 'agent connected');
    ws.on('message', (data) => {
      let m: AgentMessage;
      try {
        m = decode(agentMessageSchema, data.toString(), `message from ${session.node.name}`);
      } catch (err) {
        this.opts.log.warn({ agent: session.node.name, err: (err as Error).message }, 'malformed message ignored');
        return;
      }
      this.onAgentMessage(session, m);
    });
    const gone = () => {
      if (this.sessions.get(key) !== session) return;
      this.sessions.delete(key);
      this.pairs.disconnected(key);
    };
    ws.on('close', gone);
    ws.on('error', gone);
    this.sendSnapshot(session);
  }

  private onAgentMessage(s: AgentSession, m: AgentMessage): void {
    const key = s.node.publicKey;
    switch (m.type) {
      case 'report':
        this.acceptReport(s, m.peers);
        return;
      case 'path-event':
        this.pairs.onEvent(key, m);
        return;
      case 'hello': {
        const before = this.factsOf(key);
        const base = m.changed ? forgetLearned(before) : before;
        this.facts.set(key, withNetwork(base, m.network.lan, m.network.listenPort, this.othersOnIp(key, before.publicIp)));
        this.acceptReport(s, m.peers);
        if (!s.ready) {
          s.ready = true;
          this.pairs.connected(key, m.peers);
        } else if (m.changed) {
          // The hello itself crossed the tunnel from the new network, so the next device read
          // (≤ 20 ms) sees the new endpoint and re-decides the pairs; if only the LAN changed, do it here.
          clearTimeout(this.pendingNetwork.get(key));
          this.pendingNetwork.set(
            key,
            setTimeout(() => {
              this.pendingNetwork.delete(key);
              this.pairs.changed(key, `${s.node.name} changed network`);
            }, NETWORK_SETTLE_MS),
          );
        }
        return;
      }
    }
  }

  private acceptReport(s: AgentSession, peers: PeerReport[]): void {
    s.reports.clear();
    for (const p of peers) if (this.view.byKey(p.publicKey)) s.reports.set(p.publicKey, p);
  }

  // ---- admin socket (local shell only) --------------------------------------------------------

  private hubCounters() {
    return {
      interface: this.opts.ifname,
      device: this.device.kind,
      agentsConnected: this.sessions.size,
      polls: this.stats.polls,
      meanPollMs: this.stats.polls ? this.stats.pollMsTotal / this.stats.polls : 0,
      pushes: this.stats.pushes,
      groupsEnforced: this.forwardFilter !== undefined,
      nodes: this.view.size,
      revision: this.view.revision,
      endpointBacklog: this.endpoints.backlog,
    };
  }

  private async handleAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The hub's own counters alone: what a monitor (or the scale bench) polls, without the per-node and per-pair tables.
    if (req.method === 'GET' && req.url === '/v1/stats') return reply(res, 200, { hub: this.hubCounters() });
    if (req.method === 'GET' && req.url === '/v1/status') {
      const counters = new Map((await this.relays.stats()).map((x) => [x.id, x]));
      return reply(res, 200, {
        hub: this.hubCounters(),
        nodes: nodeStatus(this.view.all(), this.device_, this.sessions.values(), this.facts),
        pairs: this.pairs.status().map((p) => {
          const c = p.relayId ? counters.get(p.relayId) : undefined;
          return { ...p, relayed: c ? { aToB: c.aToB, bToA: c.bToA, dropped: c.dropped, relay: c.relay } : null };
        }),
        relays: this.relays.relays(),
      });
    }
    reply(res, 404, { error: 'not found' });
  }
}

/** What an agent is told about a peer, apart from where the hub sees it: a change of it is pushed. */
function signature(n: NodeRecord): string {
  return JSON.stringify([n.name, n.kind, n.address, n.routes, n.listenPort]);
}

function* joined(nodes: Iterable<NodeRecord>): Iterable<NodeRecord> {
  for (const n of nodes) if (!isPending(n)) yield n;
}

const sameGroups = (a: NodeRecord, b: NodeRecord) => a.groups.join() === b.groups.join();

/** Whether a batch changes which agent pairs exist: an agent came, went, joined, changed key or groups. */
function touchesPairs(d: ViewDelta): boolean {
  if (d.reset) return true;
  if ([...d.added, ...d.removed].some((n) => n.kind === 'agent')) return true;
  return d.changed.some(({ before: b, after: a }) => a.kind === 'agent' && (isPending(a) !== isPending(b) || a.publicKey !== b.publicKey || !sameGroups(a, b)));
}
