import { createServer, type Server } from 'node:http';
import { mkdirSync, rmSync } from 'node:fs';
import { HubLink } from '../core/hub-link.js';
import { listenPrivate } from '../core/admin-socket.js';
import type { Logger } from '../core/log.js';
import type { Prefixed } from '../core/net/cidr.js';
import { Endpoint, HostPort } from '../core/net/endpoint.js';
import { hubMessageSchema, PROTOCOL_VERSION, type AgentConfig, type AgentMessage, type AgentSettings, type HubMessage, type PathEvent, type PeerInfo, type PeerReport } from '../core/protocol.js';
import { openDevice, type WireGuardDevice } from '../core/wireguard/device.js';
import type { PeerState } from '../core/wireguard/uapi.js';
import { ClientPeer } from './client-peer.js';
import { HubEndpoints } from './hub-endpoints.js';
import { HubKeepalive } from './hub-keepalive.js';
import { HubStream } from './hub-stream.js';
import { onStream } from './hub-transport.js';
import { MeshPeer } from './mesh-peer.js';
import { NetworkWatch } from './network-watch.js';
import { LivenessProbe } from './liveness-probe.js';
import { NftPunchTtl } from './punch-ttl.js';
import { answerWanProbe } from './wan-probe-answer.js';
import { agentSocketPath } from './socket-path.js';
import { realClock } from '../core/clock.js';
import type { PortMapperStatusJson } from '../core/status.js';
import { findGateway } from './port-mapping/gateway.js';
import type { Mapping } from './port-mapping/machine.js';
import { PortMapper } from './port-mapping/mapper.js';
import { natpmpClient } from './port-mapping/natpmp.js';
import { pcpClient } from './port-mapping/pcp.js';
import { UpnpClient } from './port-mapping/upnp.js';

export interface AgentOptions {
  config: AgentConfig;
  ifname: string;
  log: Logger;
  /** How long a direct attempt toward a plain client may take before it counts as failed. */
  attemptMs?: number;
  /** Ask the router to map WireGuard's port (PCP, NAT-PMP, UPnP-IGD). Default: true (`--no-port-mapping`). */
  portMapping?: boolean;
}

const MAPPER_OFF: PortMapperStatusJson = { state: 'off', mapping: null, gateway: null, problem: null, nextTryInMs: null };

/** While an attempt runs the device is read every 50 ms; otherwise once a second is enough for liveness. */
const FAST_TICK_MS = 50;
const SLOW_TICK_MS = 1000;

type Managed = MeshPeer | ClientPeer;

/**
 * The device side: keeps this node's WireGuard peers in line with what the hub says. Peers that
 * are agents follow the hub's path decisions (mesh-peer.ts); plain clients are served as before
 * (client-peer.ts). Everything that touches the device runs through one queue, in order.
 */
export class Agent {
  private device!: WireGuardDevice;
  private link!: HubLink<HubMessage, AgentMessage>;
  private settings?: AgentSettings;
  private peers = new Map<string, Managed>();
  private timers: NodeJS.Timeout[] = [];
  private admin?: Server;
  private queue: Promise<void> = Promise.resolve();
  private network?: NetworkWatch;
  private lastSlowTick = 0;
  private tickQueued = false;
  private reportTimer?: NodeJS.Timeout;
  private hubRoutes = '';
  /** The hub's endpoints, when it has more than one: the agent falls back to the next when the hub goes quiet. */
  private hubEndpoints?: HubEndpoints;
  private readonly hubEndpointList: string[];
  private hubKeepalive!: HubKeepalive;
  /** Opening packets that die before the peer's router; undefined without nftables. */
  private punchTtl?: NftPunchTtl;
  private readonly probe = new LivenessProbe();
  private mapper?: PortMapper;
  /** The hub peer on UDP or on the hub's TLS stream, and relay sides on the stream (hub-stream.ts). */
  private hubStream?: HubStream;

  constructor(private readonly opts: AgentOptions) {
    // Canonical text, to compare with the endpoints the device reports.
    this.hubEndpointList = (opts.config.hubEndpoints ?? []).map((e) => HostPort.parse(e).toString());
  }

  async start(): Promise<void> {
    this.device = await openDevice(this.opts.ifname);
    this.hubKeepalive = new HubKeepalive(this.device, this.opts.log);
    this.hubStream = new HubStream({
      stream: this.opts.config.stream,
      hubEndpoints: this.hubEndpointList,
      token: this.opts.config.token,
      device: this.device,
      log: this.opts.log,
      enqueue: (fn) => this.enqueue(fn),
      changed: (s) => {
        // Proven on its new way: the control connection starts over on it, and the hub hears why.
        if (s.kind === 'stream' || (s.kind === 'udp' && s.proven)) this.link?.retryNow();
        if (this.link?.connected) this.enqueue(() => this.hello(false));
        this.scheduleTick();
      },
    });
    if (this.hubEndpointList.length > 1) this.hubEndpoints = new HubEndpoints(this.hubEndpointList, this.device, this.opts.log, Date.now());
    this.network = new NetworkWatch(this.opts.ifname, (interfaces) => this.enqueue(() => this.onNetworkChange(interfaces)));
    await this.network.start();
    this.punchTtl = await NftPunchTtl.create(this.opts.log);
    this.learnPunchTtl((await this.device.get()).peers);
    if (this.opts.portMapping !== false) {
      this.mapper = new PortMapper({
        clock: realClock,
        log: this.opts.log,
        internalPort: async () => (await this.device.get()).listenPort,
        gateway: () => findGateway(this.opts.ifname),
        clients: [pcpClient, natpmpClient, new UpnpClient()],
        // The hub hears of every grant, renewal and loss in a hello: its facts are the network's.
        report: () => {
          if (this.link?.connected) this.enqueue(() => this.hello(false));
        },
        // Without a mapping the hub must still hear that there is nothing more to wait for.
        firstAnswer: () => {
          if (this.link?.connected && !this.mapper?.mapping()) this.enqueue(() => this.hello(false));
        },
      });
      this.mapper.start();
    }
    this.link = new HubLink<HubMessage, AgentMessage>({
      config: this.opts.config,
      path: '/v1/agent',
      schema: hubMessageSchema,
      log: this.opts.log,
      onOpen: () => {
        // A hub that restarted numbers its commands from 0 again.
        for (const p of this.peers.values()) if (p instanceof MeshPeer) p.seq = -1;
        this.enqueue(() => this.hello(false));
      },
      onMessage: (m) => this.enqueue(() => this.onMessage(m)),
    });
    this.link.start();
    this.timers.push(setInterval(() => this.scheduleTick(), FAST_TICK_MS));
    this.timers.push(setInterval(() => this.report(), 10_000));
    mkdirSync('/run/wgp2p', { recursive: true, mode: 0o700 });
    const sock = agentSocketPath(this.opts.ifname);
    this.admin = createServer((req, res) => {
      if (req.url !== '/v1/status') {
        res.writeHead(404).end();
        return;
      }
      void this.device.get().then(
        (d) => {
          const dev = new Map(d.peers.map((p) => [p.publicKey, p]));
          const peers = this.reports(dev).map((r) => ({ ...r, name: this.peers.get(r.publicKey)?.info.name, peer: this.peers.get(r.publicKey)?.info.kind }));
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: this.opts.config.name, interface: this.opts.ifname, hubConnected: this.link.connected, portMapping: this.mapper?.status() ?? MAPPER_OFF, hubTransport: this.hubStream?.status(), peers }));
        },
        (err: Error) => res.writeHead(500).end(JSON.stringify({ error: err.message })),
      );
    });
    await listenPrivate(this.admin, sock);
  }

  /**
   * The opening-packet TTL is learned from the hops toward the hub: the hub peer is the one with
   * the hub's key once the hub said it, before that the only peer the config has an endpoint for.
   */
  private learnPunchTtl(peers: readonly PeerState[]): void {
    if (!this.punchTtl) return;
    const hub = this.settings ? peers.find((p) => p.publicKey === this.settings!.hubPublicKey) : peers.filter((p) => p.endpoint).length === 1 ? peers.find((p) => p.endpoint) : undefined;
    // On the stream the hub peer points at the shim on loopback: no hops to learn from.
    if (hub?.endpoint && hub.endpoint.address.scope() !== 'loopback') this.punchTtl.learn(hub.endpoint.address);
  }

  async stop(): Promise<void> {
    this.hubStream?.stop();
    await this.punchTtl?.close();
    this.probe.close();
    this.network?.stop();
    // A clean exit deletes the mapping at the router (the lease would otherwise outlive us by hours).
    await this.mapper?.stop();
    this.timers.forEach(clearInterval);
    clearTimeout(this.reportTimer);
    for (const p of this.peers.values()) if (p instanceof ClientPeer) p.stop();
    this.link.stop();
    await new Promise((r) => (this.admin ? this.admin.close(() => r(undefined)) : r(undefined)));
    rmSync(agentSocketPath(this.opts.ifname), { force: true });
  }

  private enqueue(fn: () => Promise<void>): void {
    this.queue = this.queue.then(fn).catch((err: unknown) => this.opts.log.error({ err }, 'agent task failed'));
  }

  private send(m: AgentMessage): void {
    this.link.send(m);
  }

  /** Our network facts and what the device does for each peer, so a restarted hub can pick up where it was. */
  private async hello(changed: boolean): Promise<void> {
    const d = await this.device.get();
    const interfaces = await this.network!.interfaces();
    this.send({ type: 'hello', protocol: PROTOCOL_VERSION, changed, network: { listenPort: d.listenPort, interfaces, portMapping: mappingFacts(this.mapper?.mapping() ?? null, d.listenPort), portMappingPending: this.mapper?.firstAnswerPending() ?? false, ...this.transportFacts() }, peers: this.reports(new Map(d.peers.map((p) => [p.publicKey, p]))) });
  }

  private transportFacts(): { hubTransport?: { transport: 'udp' | 'tcp/tls'; reason: string } } {
    const st = this.hubStream?.status();
    return st ? { hubTransport: { transport: st.transport, reason: st.reason.slice(0, 300) } } : {};
  }

  /**
   * This device moved to another network. wireguard-go keeps sending from the source address it
   * cached and goes silent (measured in the lab), so rebind its socket by setting the listen port;
   * then tell the hub at once (our message crosses the tunnel, so the hub also sees our new
   * endpoint now, not at the next keepalive). The hub re-decides every agent pair; plain clients
   * we try again from here.
   */
  private async onNetworkChange(interfaces: Prefixed[]): Promise<void> {
    this.opts.log.info({ interfaces: interfaces.map(String) }, 'network changed');
    const before = await this.device.get();
    await this.device.set({ listenPort: before.listenPort });
    this.learnPunchTtl(before.peers);
    // Another router, or the same one renumbered: map again (the hello below already goes without the old mapping).
    this.mapper?.networkChanged();
    await this.hello(true);
    // Rebinding touches no peer: the reading from before it still holds for them.
    const peers = new Map(before.peers.map((p) => [p.publicKey, p]));
    for (const p of this.peers.values()) if (p instanceof ClientPeer) await p.retryNow(peers.get(p.key));
    await this.hubStream?.networkChanged(this.hubPeer(peers));
  }

  /** The hub peer in a reading: by the hub's key once the hub said it, else the peer at one of the hub's endpoints. */
  private hubPeer(dev: Map<string, PeerState>): PeerState | undefined {
    if (this.settings) return dev.get(this.settings.hubPublicKey);
    const known = this.hubStream?.hubPublicKey;
    if (known) return dev.get(known);
    const withEndpoint = [...dev.values()].filter((p) => p.endpoint !== undefined);
    return withEndpoint.find((p) => this.hubEndpointList.includes(p.endpoint!.toString())) ?? (withEndpoint.length === 1 ? withEndpoint[0] : undefined);
  }

  /** Every message is handled with one reading of the device, taken here and passed down. */
  private async onMessage(m: HubMessage): Promise<void> {
    const dev = await this.devicePeers();
    switch (m.type) {
      case 'snapshot': {
        const first = !this.settings;
        this.settings = m.settings;
        if (first && this.punchTtl?.ttl === null) this.learnPunchTtl([...dev.values()]);
        const keep = new Set(m.peers.map((p) => p.publicKey));
        await this.removePeers([...this.peers.keys()].filter((k) => !keep.has(k)));
        for (const p of m.peers) await this.upsert(p, dev.get(p.publicKey));
        await this.syncHubRoutes(dev);
        this.report();
        return;
      }
      case 'peer':
        await this.upsert(m.peer, dev.get(m.peer.publicKey));
        await this.syncHubRoutes(dev);
        return;
      case 'nat-probe': {
        const hub = this.settings ? dev.get(this.settings.hubPublicKey)?.endpoint : undefined;
        if (hub?.family === 4) void answerWanProbe(Endpoint.of(hub.address, m.port), m.from, this.opts.log);
        return;
      }
      case 'peer-removed':
        await this.removePeers([m.publicKey]);
        await this.syncHubRoutes(dev);
        return;
      case 'path': {
        const st = this.peers.get(m.publicKey);
        if (!(st instanceof MeshPeer)) return;
        await st.apply(m, dev.get(m.publicKey));
        await this.syncHubRoutes(dev);
        this.scheduleTick();
        return;
      }
    }
  }

  private async devicePeers(): Promise<Map<string, PeerState>> {
    return new Map((await this.device.get()).peers.map((p) => [p.publicKey, p]));
  }

  private async upsert(info: PeerInfo, onDevice: PeerState | undefined): Promise<void> {
    if (this.settings && info.publicKey === this.settings.hubPublicKey) return;
    let st = this.peers.get(info.publicKey);
    if (st && st.info.kind !== info.kind) {
      await this.removePeers([info.publicKey]);
      st = undefined;
    }
    const isNew = !st;
    if (!st) {
      st =
        info.kind === 'agent'
          ? new MeshPeer(info, { device: this.device, keepalive: () => this.settings?.peerKeepalive || 25, emit: (ev) => this.emit(ev), changed: () => this.changed(), log: this.opts.log, punchTtl: this.punchTtl, stream: this.hubStream, probe: (to) => this.probe.send(to) })
          : new ClientPeer(info, { device: this.device, settings: () => this.settings!, proxied: () => this.settings?.proxied ?? false, changed: () => this.changed(), log: this.opts.log, attemptMs: this.opts.attemptMs ?? 2000 });
      this.peers.set(info.publicKey, st);
    }
    if (st instanceof MeshPeer) {
      st.info = info;
      await st.ensure(onDevice);
    } else {
      await st.apply(info, isNew, onDevice);
    }
  }

  private async removePeers(keys: string[]): Promise<void> {
    // Only peers this agent manages (those the hub told us about): never the hub peer, never a peer you configured yourself.
    const ours = keys.filter((k) => this.peers.has(k));
    for (const k of ours) {
      const st = this.peers.get(k)!;
      if (st instanceof ClientPeer) st.stop();
      this.peers.delete(k);
    }
    if (ours.length) await this.device.set({ peers: ours.map((publicKey) => ({ publicKey, remove: true })) });
  }

  /**
   * Peers reached through the hub (proxied mode, ours or theirs) have no entry of their own: their
   * addresses are routed to the hub peer. Only those addresses are added; the rest of the hub peer
   * (its endpoint, its keepalive) is never touched.
   */
  private async syncHubRoutes(dev: Map<string, PeerState>): Promise<void> {
    const s = this.settings;
    if (!s) return;
    const viaHub = [...this.peers.values()].filter((p) => p.viaHub).flatMap((p) => p.info.allowedIps);
    const want = [...new Set([...s.hubAllowedIps, ...viaHub])].sort();
    const key = want.join(',');
    if (key === this.hubRoutes) return;
    // Nothing this message did touches the hub peer, so the reading taken for it still holds.
    const hub = dev.get(s.hubPublicKey);
    if (!hub) return;
    this.hubRoutes = key;
    if (hub.allowedIps.slice().sort().join(',') !== key) await this.device.set({ peers: [{ publicKey: s.hubPublicKey, allowedIps: want }] });
  }

  private emit(ev: PathEvent): void {
    this.opts.log.debug({ ev }, 'path event');
    this.send(ev);
  }

  private scheduleTick(): void {
    if (this.tickQueued) return;
    const now = Date.now();
    const busy = [...this.peers.values()].some((p) => p.busy) || this.hubStream?.busy === true;
    if (!busy && now - this.lastSlowTick < SLOW_TICK_MS) return;
    this.tickQueued = true;
    this.enqueue(async () => {
      this.tickQueued = false;
      this.lastSlowTick = Date.now();
      const dev = await this.devicePeers();
      const t = Date.now();
      for (const st of this.peers.values()) await st.tick(dev.get(st.key), t);
      if (this.settings) await this.hubKeepalive.check(dev.get(this.settings.hubPublicKey));
      await this.hubStream?.check(this.hubPeer(dev), t);
      const streamed = this.hubStream?.transport !== undefined && onStream(this.hubStream.transport);
      // On the stream the hub peer points at the shim: the other UDP endpoint is no way out.
      if (this.hubEndpoints && !streamed) {
        const hub = this.settings ? dev.get(this.settings.hubPublicKey) : [...dev.values()].find((p) => p.endpoint !== undefined && this.hubEndpointList.includes(p.endpoint.toString()));
        await this.hubEndpoints.check(hub, this.link.connected, hub?.persistentKeepalive ?? 25, t);
      }
    });
  }

  /** Path changes are reported within 20 ms, coalesced. */
  private changed(): void {
    if (this.reportTimer) return;
    this.reportTimer = setTimeout(() => {
      this.reportTimer = undefined;
      this.report();
    }, 20);
  }

  reports(device?: Map<string, PeerState>): PeerReport[] {
    return [...this.peers.values()].map((st) => st.report(device?.get(st.key)));
  }

  private report(): void {
    if (!this.link.connected) return;
    void this.devicePeers()
      .then((d) => this.send({ type: 'report', peers: this.reports(d) }))
      .catch(() => undefined);
  }
}

/** The mapping as the hub is told it; none unless it forwards to the port WireGuard listens on now. */
function mappingFacts(m: Mapping | null, listenPort: number) {
  if (!m || m.internalPort !== listenPort) return null;
  return { protocol: m.protocol, external: m.external, internalPort: m.internalPort, expiresInMs: Math.max(0, Math.round(m.expiresAt - Date.now())) };
}
