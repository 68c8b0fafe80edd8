import { createServer, type Server } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import WebSocket from 'ws';
import type { Logger } from '../core/log.js';
import { decode, hubMessageSchema, type AgentConfig, type AgentSettings, type HubMessage, type PathState, type PeerInfo, type PeerReport } from '../core/protocol.js';
import { openDevice, type WireGuardDevice } from '../core/wireguard/device.js';
import type { PeerState } from '../core/wireguard/uapi.js';
import { NetworkWatch } from './network-watch.js';

export interface AgentOptions {
  config: AgentConfig;
  ifname: string;
  log: Logger;
  /** How long a direct attempt may take before it counts as failed (2 s: a lab handshake takes ~20 ms). */
  attemptMs?: number;
}

interface ManagedPeer {
  info: PeerInfo;
  /** The hub-reported endpoint we last applied: only a change of it moves the device's endpoint. */
  appliedEndpoint: string | null;
  keepalive: number;
  path: PathState;
  attemptStartedAt: number;
  rxAtAttempt: number;
  directAfterMs: number | null;
  reason: string | null;
  failures: number;
  retry?: NodeJS.Timeout;
  /** Set by the hub when direct failed between two agents. */
  relayEndpoint?: string;
}

export const agentSocketPath = (ifname: string) => `/run/wgp2p/agent-${ifname}.sock`;

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10_000;

export class Agent {
  private device!: WireGuardDevice;
  private ws?: WebSocket;
  private settings: AgentSettings = { peerKeepalive: 25, staleAfterSec: 120 };
  private peers = new Map<string, ManagedPeer>();
  private stopped = false;
  private backoff = RECONNECT_MIN_MS;
  private timers: NodeJS.Timeout[] = [];
  private admin?: Server;
  private hubConnected = false;
  private inbox: Promise<void> = Promise.resolve();
  private network?: NetworkWatch;

  constructor(private readonly opts: AgentOptions) {}

  async start(): Promise<void> {
    this.device = await openDevice(this.opts.ifname);
    this.network = new NetworkWatch(this.opts.ifname, (addrs) => void this.onNetworkChange(addrs).catch((err: unknown) => this.opts.log.error({ err }, 'handling a network change failed')));
    await this.network.start();
    this.connect();
    this.timers.push(setInterval(() => void this.watch().catch((err: unknown) => this.opts.log.error({ err }, 'watch failed')), 50));
    this.timers.push(setInterval(() => this.report(), 10_000));
    mkdirSync('/run/wgp2p', { recursive: true, mode: 0o700 });
    const sock = agentSocketPath(this.opts.ifname);
    rmSync(sock, { force: true });
    this.admin = createServer((req, res) => {
      if (req.url !== '/v1/status') {
        res.writeHead(404).end();
        return;
      }
      void this.device.get().then(
        (d) => {
          const dev = new Map(d.peers.map((p) => [p.publicKey, p]));
          const peers = this.reports(dev).map((r) => ({ ...r, name: this.peers.get(r.publicKey)?.info.name }));
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: this.opts.config.name, interface: this.opts.ifname, hubConnected: this.hubConnected, peers }));
        },
        (err: Error) => res.writeHead(500).end(JSON.stringify({ error: err.message })),
      );
    });
    await new Promise<void>((r) => this.admin!.listen(sock, r));
    chmodSync(sock, 0o600);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.network?.stop();
    this.timers.forEach(clearInterval);
    this.peers.forEach((p) => clearTimeout(p.retry));
    this.ws?.terminate();
    await new Promise((r) => (this.admin ? this.admin.close(() => r(undefined)) : r(undefined)));
    rmSync(agentSocketPath(this.opts.ifname), { force: true });
  }

  private connect(): void {
    if (this.stopped) return;
    const url = this.opts.config.hubUrl.replace(/^http/, 'ws').replace(/\/$/, '') + '/v1/agent';
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.opts.config.token}` }, handshakeTimeout: 5000 });
    this.ws = ws;
    ws.on('open', () => {
      this.backoff = RECONNECT_MIN_MS;
      this.hubConnected = true;
      this.opts.log.info({ hub: this.opts.config.hubUrl }, 'connected to hub');
    });
    ws.on('message', (data) => {
      let m: HubMessage;
      try {
        m = decode(hubMessageSchema, data.toString(), 'message from hub');
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message }, 'malformed message from hub ignored');
        return;
      }
      // In order: a relay message must not be overtaken by the snapshot that came before it.
      this.inbox = this.inbox.then(() => this.onMessage(m)).catch((err: unknown) => this.opts.log.error({ err }, 'applying hub message failed'));
    });
    ws.on('unexpected-response', (_req, res) => {
      this.opts.log.error({ status: res.statusCode }, res.statusCode === 401 ? 'the hub rejected our token' : 'the hub refused the connection');
    });
    ws.on('error', (err) => this.opts.log.debug({ err: err.message }, 'hub connection error'));
    ws.on('close', () => {
      this.hubConnected = false;
      if (this.stopped) return;
      // Reconnect with backoff; the tunnels already up do not need the hub.
      const delay = this.backoff;
      this.backoff = Math.min(RECONNECT_MAX_MS, this.backoff * 2);
      this.timers.push(setTimeout(() => this.connect(), delay));
    });
  }

  /**
   * This device moved to another network. wireguard-go keeps sending from the source address it
   * cached and goes silent (measured in the lab), so rebind its socket by setting the listen port;
   * then send to the hub at once (our report crosses the tunnel, so the hub sees the new endpoint
   * now, not at the next keepalive) and try every client again from here.
   */
  private async onNetworkChange(addresses: string[]): Promise<void> {
    this.opts.log.info({ addresses }, 'network changed');
    const dev = await this.device.get();
    await this.device.set({ listenPort: dev.listenPort });
    this.report();
    for (const st of this.peers.values()) if (st.keepalive > 0) await this.attempt(st, false);
  }

  private async onMessage(m: HubMessage): Promise<void> {
    if (m.type === 'relay') {
      const st = this.peers.get(m.publicKey);
      if (st) await this.useRelay(st, m.endpoint);
      return;
    }
    if (m.type === 'snapshot') {
      this.settings = m.settings;
      const keep = new Set(m.peers.map((p) => p.publicKey));
      const gone = [...this.peers.keys()].filter((k) => !keep.has(k));
      if (gone.length) await this.removePeers(gone);
      for (const p of m.peers) await this.apply(p);
      this.report();
    } else if (m.type === 'peer') {
      await this.apply(m.peer);
    } else {
      await this.removePeers([m.publicKey]);
    }
  }

  private async removePeers(keys: string[]): Promise<void> {
    // Only peers this agent manages (clients the hub told us about): never the hub peer, never a fixed peer.
    const ours = keys.filter((k) => this.peers.has(k));
    ours.forEach((k) => clearTimeout(this.peers.get(k)!.retry));
    ours.forEach((k) => this.peers.delete(k));
    if (ours.length) await this.device.set({ peers: ours.map((publicKey) => ({ publicKey, remove: true })) });
  }

  private fresh(info: PeerInfo): boolean {
    return info.handshakeAgeMs !== null && info.handshakeAgeMs <= this.settings.staleAfterSec * 1000;
  }

  private async apply(info: PeerInfo): Promise<void> {
    let st = this.peers.get(info.publicKey);
    const isNew = !st;
    if (!st) {
      st = { info, appliedEndpoint: null, keepalive: -1, path: 'unknown', attemptStartedAt: 0, rxAtAttempt: 0, directAfterMs: null, reason: null, failures: 0 };
      this.peers.set(info.publicKey, st);
    }
    st.info = info;
    const keepalive = this.fresh(info) ? this.settings.peerKeepalive : 0;
    const endpointChanged = info.endpoint !== null && info.endpoint !== st.appliedEndpoint;
    if (!isNew && !endpointChanged && keepalive === st.keepalive) return;

    if (st.relayEndpoint !== undefined && st.appliedEndpoint === null && info.endpoint !== null) {
      // The hub sent a relay before any direct attempt (it knew direct cannot work): note the
      // endpoint for later network changes, stay on the relay.
      st.appliedEndpoint = info.endpoint;
      return;
    }
    if (keepalive === 0) {
      // The client has been silent at the hub for staleAfterSec: stop spending keepalives on it.
      await this.device.set({ peers: [{ publicKey: info.publicKey, allowedIps: info.allowedIps, persistentKeepalive: 0, ...(endpointChanged ? { endpoint: info.endpoint! } : {}) }] });
      st.keepalive = 0;
      st.appliedEndpoint = info.endpoint ?? st.appliedEndpoint;
      this.setPath(st, info.handshakeAgeMs === null ? 'unknown' : 'stale', null);
      return;
    }
    if (endpointChanged || st.keepalive !== keepalive) await this.attempt(st, endpointChanged);
  }

  /**
   * Points the peer at the hub-reported endpoint and makes WireGuard send at once. Measured in the
   * lab: setting an endpoint sends nothing; a keepalive interval going from 0 to non-zero sends a
   * keepalive (or a handshake initiation) within ~5 ms. So one UAPI set clears and sets it again.
   */
  private async attempt(st: ManagedPeer, withEndpoint: boolean): Promise<void> {
    const info = st.info;
    const k = this.settings.peerKeepalive;
    clearTimeout(st.retry);
    const before = (await this.device.get()).peers.find((p) => p.publicKey === info.publicKey);
    await this.device.set({
      peers: [
        { publicKey: info.publicKey, allowedIps: info.allowedIps, ...(withEndpoint && info.endpoint ? { endpoint: info.endpoint } : {}), persistentKeepalive: 0 },
        { publicKey: info.publicKey, persistentKeepalive: k },
      ],
    });
    if (withEndpoint) st.appliedEndpoint = info.endpoint;
    st.keepalive = k;
    st.attemptStartedAt = Date.now();
    st.rxAtAttempt = before?.rxBytes ?? 0;
    this.setPath(st, 'trying', null);
  }

  /**
   * Moves a peer onto the relay. WireGuard does not handshake because an endpoint changed, and
   * the relay learns ports only from handshakes, so the peer is removed and added again: the
   * next packet starts a fresh session through the relay.
   */
  private async useRelay(st: ManagedPeer, endpoint: string): Promise<void> {
    if (st.relayEndpoint === endpoint && (st.path === 'relayed' || st.path === 'relaying')) return;
    clearTimeout(st.retry);
    st.relayEndpoint = endpoint;
    const k = this.settings.peerKeepalive || 25;
    await this.device.set({ peers: [{ publicKey: st.info.publicKey, remove: true }] });
    await this.device.set({
      peers: [
        { publicKey: st.info.publicKey, endpoint, allowedIps: st.info.allowedIps, persistentKeepalive: 0 },
        { publicKey: st.info.publicKey, persistentKeepalive: k },
      ],
    });
    st.keepalive = k;
    st.attemptStartedAt = Date.now();
    st.rxAtAttempt = 0;
    this.setPath(st, 'relaying', null);
  }

  /** Decides each attempt from the device: a handshake or received bytes after it, not via the relay, means the path works. */
  private async watch(): Promise<void> {
    const trying = [...this.peers.values()].filter((p) => p.path === 'trying' || p.path === 'relaying');
    if (trying.length === 0) return;
    const dev = new Map((await this.device.get()).peers.map((p) => [p.publicKey, p]));
    const now = Date.now();
    for (const st of trying) {
      const p = dev.get(st.info.publicKey);
      const relaying = st.path === 'relaying';
      // While a pair also has a relay, traffic arriving through it says nothing about the direct path.
      const viaRelay = !relaying && st.relayEndpoint !== undefined && p?.endpoint === st.relayEndpoint;
      if (p && !viaRelay && (p.lastHandshakeMs >= st.attemptStartedAt || p.rxBytes > st.rxAtAttempt)) {
        st.failures = 0;
        st.directAfterMs = now - st.attemptStartedAt;
        this.setPath(st, relaying ? 'relayed' : 'direct', null);
      } else if (now - st.attemptStartedAt > (this.opts.attemptMs ?? 2000) * (relaying ? 2 : 1)) {
        st.failures++;
        this.setPath(st, 'impossible', relaying ? 'the relay carried no handshake' : this.failureReason(st.info));
        // Clients: keep trying with backoff (5 s, 10 s, … 60 s), their network may change. Agent
        // pairs: the hub answers a failure with a relay, and retries direct when an endpoint moves.
        if (st.info.kind === 'client') {
          const delay = Math.min(60_000, 5000 * 2 ** Math.min(4, st.failures - 1));
          st.retry = setTimeout(() => void this.attempt(st, false).catch(() => undefined), delay);
        }
      }
    }
  }

  private failureReason(info: PeerInfo): string {
    const port = info.endpoint ? Number(info.endpoint.split(':').pop()) : null;
    const why =
      info.listenPort !== null && port !== null && port !== info.listenPort
        ? `its NAT changed the port (${info.listenPort} -> ${port}), so it maps per destination (symmetric)`
        : 'no handshake on the direct path';
    return info.kind === 'client' ? `direct impossible from this network (${why}); use ${info.name}.proxied.conf` : `direct impossible (${why}); asking the hub for a relay`;
  }

  private setPath(st: ManagedPeer, path: PathState, reason: string | null): void {
    const changed = st.path !== path;
    st.path = path;
    st.reason = reason;
    if (changed) {
      this.opts.log.info({ peer: st.info.name, path, reason, directAfterMs: path === 'direct' ? st.directAfterMs : undefined }, 'path');
      this.report();
    }
  }

  reports(device?: Map<string, PeerState>): PeerReport[] {
    return [...this.peers.values()].map((st) => {
      const p = device?.get(st.info.publicKey);
      return {
        publicKey: st.info.publicKey,
        path: st.path,
        endpoint: p?.endpoint ?? st.appliedEndpoint,
        handshakeAgeMs: p && p.lastHandshakeMs > 0 ? Date.now() - p.lastHandshakeMs : null,
        rxBytes: p?.rxBytes ?? 0,
        txBytes: p?.txBytes ?? 0,
        directAfterMs: st.directAfterMs,
        reason: st.reason,
      };
    });
  }

  private report(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== ws.OPEN) return;
    void this.device
      .get()
      .then((d) => ws.send(JSON.stringify({ type: 'report', peers: this.reports(new Map(d.peers.map((p) => [p.publicKey, p]))) })))
      .catch(() => undefined);
  }
}
