import { join } from 'node:path';
import type { WebSocket } from 'ws';
import { usableMapping } from '../core/candidates/mapped.js';
import { ipv6Endpoint } from '../core/candidates/public-ipv6.js';
import { keptReported } from '../core/candidates/reported.js';
import { tcpRelay } from '../core/candidates/tcp-relay.js';
import { realClock, KeyedTimers } from '../core/clock.js';
import { LogThrottle, Spacer } from '../core/rate.js';
import type { Logger } from '../core/log.js';
import type { IpAddress } from '../core/net/address.js';
import { Endpoint } from '../core/net/endpoint.js';
import type { AgentMessage, AgentSettings } from '../core/protocol.js';
import type { HubStatusJson } from '../core/status.js';
import { openDevice, type WireGuardDevice } from '../core/wireguard/device.js';
import { KernelPath } from '../relay/kernel-path.js';
import { AdminServer } from './admin.js';
import { BuiltinRelay, builtinRelayAddresses } from './builtin-relay.js';
import { startHubStreamSide } from './stream-side.js';
import { byEnrolKeyIn } from './join-stream.js';
import type { StreamServer } from '../relay/stream-server.js';
import { coalesced } from './coalesce.js';
import { agentHubAllowedIps } from './configs.js';
import { ControlApi } from './control-api.js';
import { DeviceWatch } from './device-watch.js';
import { MappingWait } from './mapping-wait.js';
import { doctorView } from './doctor-view.js';
import { DEFAULT_STUN_PORT, StunResponder } from './stun-responder.js';
import { DirectoryView, isEmptyDelta, type ViewDelta } from './directory-view.js';
import { EndpointWriter } from './endpoint-writer.js';
import { ForwardFilter } from './forward-filter.js';
import { WanProbe } from './wan-probe.js';
import { NatKnowledge } from './nat-knowledge.js';
import { PairPaths, type RelayGrant } from './pairs/coordinator.js';
import { PeerSync } from './peer-sync.js';
import { RelayPool } from './relay-pool.js';
import { JoinFence } from './join-fence.js';
import { acceptRelay } from './remote-relay.js';
import { AgentSessions, type AgentSession } from './sessions.js';
import { nodeStatus, storeStatus } from './status.js';
import { isPending, type HubSettings, type NodeRecord } from './store/model.js';
import { openStore, type DirectoryStore } from './store/store.js';

/**
 * The hub, as the composition of its parts. The path of an endpoint through them:
 *   device-watch.ts (the hub's device sees a node's NAT mapping)
 *   -> nat-knowledge.ts (what that says about its NAT) and endpoint-writer.ts (kept for configs)
 *   -> pairs/coordinator.ts (each pair of the node tries its candidates again)
 *   -> sessions.ts (the commands go to both agents) -> agent/mesh-peer.ts (`wg set`).
 * Directory changes come from the store's change feed into directory-view.ts, and from there to
 * the device (peer-sync.ts), the group filter, the agents (sessions.ts) and the pairs.
 */

export interface HubOptions {
  dir: string;
  ifname: string;
  log: Logger;
  /** Shortest device read interval (device-watch.ts says why 20 ms). */
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
  /**
   * Where the built-in relay binds and nodes send to: one address, or one of each family (then an
   * IPv6-only node and an IPv4-only node are bridged). Default: the hub's endpoints that are IP
   * addresses, one per family (builtin-relay.ts).
   */
  relayAddresses?: readonly IpAddress[];
  relayPorts?: [number, number];
  /** No relay inside the hub: only relays that register (`wgp2p relay run`). */
  noBuiltinRelay?: boolean;
  /** The stream side's TCP port instead of the one `hub init` chose, or false for none (issue 12). */
  tcpPort?: number | false;
  /**
   * The STUN responder `wgp2p doctor` measures networks against (stun-responder.ts): this port
   * and the next on the relay's addresses. Default 3478 (STUN's own); null: none.
   */
  stunPort?: number | null;
}

/** After a network change without a new endpoint (only the LAN changed), re-decide the node's pairs after this. */
const NETWORK_SETTLE_MS = 300;
/**
 * A node whose endpoint flaps (a broken NAT, or a peer playing games) costs a new attempt per
 * pair and a push to every agent that serves it per change: the first change acts at once, later
 * ones at most once a second (pairs) or twice (pushes), the latest one winning. A real roam is
 * one change, so it pays nothing.
 */
const REDECIDE_GAP_MS = 1000;
const PUSH_GAP_MS = 500;
/**
 * How long one of the hub's store writes waits for another process's lock. SQLite waits by
 * sleeping inside the call, so the whole hub (device reads every 20 ms, pushes, the API) stops
 * for that long: with the 5 s default one locked write froze it for 4.93 s. A CLI command's
 * transaction holds the lock for a few milliseconds, so 50 ms waits out the usual case, and a
 * lock held longer costs the hub at most 50 ms per attempt (the endpoint writer retries after 1 s,
 * doubling up to 30 s: under 5 % of its time, then far less).
 */
export const HUB_LOCK_WAIT_MS = 50;

export class Hub {
  private store!: DirectoryStore;
  private settings!: HubSettings;
  private device!: WireGuardDevice;
  private readonly view = new DirectoryView();
  private peerSync!: PeerSync;
  private endpoints!: EndpointWriter;
  private watch!: DeviceWatch;
  private nat!: NatKnowledge;
  private pairs!: PairPaths;
  /** Learns whether each agent's router takes unsolicited WAN input; undefined if its socket could not be opened. */
  private wanProbe?: WanProbe;
  /** The endpoint each node was last probed at: a probe per public endpoint, not per sighting. */
  private probedAt = new Map<string, Endpoint>();
  private relays!: RelayPool;
  private builtin?: BuiltinRelay;
  private stream?: StreamServer;
  private stun?: StunResponder;
  /** Where a relay last confirmed each node's WireGuard port: the second observer doctor shows. */
  private readonly relaySeen = new Map<string, string>();
  /** What each agent said of its way to the hub in its last hello (status only). */
  private readonly transports = new Map<string, { transport: 'udp' | 'tcp/tls'; reason: string }>();
  private sessions!: AgentSessions;
  private api!: ControlApi;
  private admin!: AdminServer;
  private forwardFilter?: ForwardFilter;
  private joinFence?: JoinFence;
  private unsubscribe?: () => void;
  /** Set by the safety net: the next refresh diffs the whole device. */
  private fullSyncNext = true;
  private readonly settle = new KeyedTimers(realClock);
  /** New nodes whose routers may still grant a port mapping: their first attempts wait for it. */
  private readonly mappingWait = new MappingWait(realClock, (k) => this.pairs.natSettled(k));
  /** An agent decides how often it says hello: one line a minute, however many it sends. */
  private readonly droppedAddressLog = new LogThrottle(60_000);
  private readonly redecide = new Spacer(REDECIDE_GAP_MS, realClock);
  private readonly push = new Spacer(PUSH_GAP_MS, realClock);
  private timers: NodeJS.Timeout[] = [];

  constructor(private readonly opts: HubOptions) {}

  private settingsFor(n: NodeRecord): AgentSettings {
    const h = this.settings;
    return { peerKeepalive: h.peerKeepalive, staleAfterSec: h.staleAfterSec, hubPublicKey: h.publicKey, hubAllowedIps: agentHubAllowedIps(h), proxied: n.proxied };
  }

  async start(): Promise<void> {
    const log = this.opts.log;
    this.store = await openStore(this.opts.dir, { lockWaitMs: HUB_LOCK_WAIT_MS });
    // The hub's settings never change while it runs: read once at start.
    this.settings = await this.store.hub();
    this.device = await openDevice(this.opts.ifname);
    this.peerSync = new PeerSync(this.device, this.settings, log);
    this.endpoints = new EndpointWriter({ write: (batch) => this.store.recordObservations(batch), log });
    this.nat = new NatKnowledge({
      name: (k) => this.view.byKey(k)?.name ?? k.slice(0, 8),
      configuredListenPort: (k) => this.view.byKey(k)?.listenPort ?? null,
      log,
      // Plain clients' configs stop naming a mapping that did not forward.
      mappingDistrusted: (k) => {
        const facing = this.clientFacing(k);
        if (facing) this.endpoints.record(k, facing);
      },
    });
    this.relays = new RelayPool((relayId) => this.pairs.relayGone(relayId));
    this.watch = new DeviceWatch({
      device: this.device,
      known: (k) => this.view.byKey(k) !== undefined,
      staleAfterMs: () => this.settings.staleAfterSec * 1000,
      onEndpoint: (k, e) => this.endpointChanged(k, e),
      onPeer: (k) =>
        this.push.run(k, () => {
          const n = this.view.byKey(k);
          const p = this.watch.peer(k);
          if (n && p) this.sessions.pushPeer(n, p);
        }),
      log,
      pollMs: this.opts.pollMs,
    });
    this.sessions = new AgentSessions({
      hub: this.settings,
      view: this.view,
      settingsFor: (n) => this.settingsFor(n),
      seen: (k) => this.watch.peer(k),
      onMessage: (s, m) => this.onAgentMessage(s, m),
      onGone: (s) => {
        this.wanProbe?.cancel(s.node.publicKey);
        this.mappingWait.forget(s.node.publicKey);
        this.pairs.disconnected(s.node.publicKey);
      },
      log,
    });
    this.pairs = new PairPaths({
      node: (k) => {
        const n = this.view.byKey(k);
        return n && { name: n.name, proxied: n.proxied };
      },
      pairable: (x, y) => this.view.pairable(x, y),
      send: (k, cmd) => this.sessions.send(k, cmd),
      nat: this.nat,
      allocateRelay: (a, b) => this.allocateRelay(a, b),
      relayAlive: (g) => this.relays.alive(g.relayId),
      releaseRelay: (g) => this.relays.release(g.relayId),
      natPending: (k) => (this.wanProbe?.probing(k) ?? false) || this.mappingWait.pending(k),
      log,
    });
    this.wanProbe = await WanProbe.open({
      send: (k, m) => this.sessions.send(k, m),
      result: (k, port, probed) => this.wanProbed(k, port, probed),
      log,
    }).catch((err: unknown) => {
      log.warn({ err }, 'no WAN probe socket: the hub will not learn which routers take unsolicited packets before their first attempt');
      return undefined;
    });
    this.forwardFilter = await ForwardFilter.create(this.opts.ifname, this.settings);
    if (!this.forwardFilter) log.warn('nftables is not usable (not root?): groups are not enforced for traffic the hub forwards');
    this.joinFence = await JoinFence.create(this.opts.ifname, this.settings, log);
    if (!this.joinFence) log.warn('policy rules cannot be set (not root?): the hub forwards what comes through a join code\'s tunnel');
    // The whole directory onto the interface and into the group filter (a failure here stops
    // `hub run`); later changes come through refresh().
    await this.applyChanges();
    await this.applyFilter();
    await this.watch.poll();

    const hub = this.settings;
    const host = this.opts.listenAddress ?? hub.address.address.toString();
    this.api = new ControlApi({
      hub,
      store: this.store,
      view: this.view,
      sessions: this.sessions,
      settingsFor: (n) => this.settingsFor(n),
      seen: (k) => this.watch.peer(k),
      relayConnected: (node, ws) => this.relayConnected(node, ws),
      doctorView: async (node) => doctorView(await this.status(), node.name, this.relaySeen.get(node.publicKey) ?? null),
      enrolled: async (node) => {
        log.info({ node: node.name }, 'node enrolled');
        await this.refresh();
      },
      log,
    });
    await this.api.listen(host, hub.apiPort, this.opts.ifname);
    // The hub's own relay listens where nodes reach the hub: its endpoints' addresses, one per family.
    const relayAddresses = this.opts.noBuiltinRelay ? [] : builtinRelayAddresses(this.opts.relayAddresses, hub.endpoints);
    if (relayAddresses.length > 0) {
      const [portMin, portMax] = this.opts.relayPorts ?? [52000, 52999];
      const kernel = await KernelPath.forAddresses(relayAddresses, { port: portMin });
      for (const u of kernel.userspace) log.info({ address: u.address.toString(), why: u.reason }, 'relay forwards this family in userspace');
      this.builtin = new BuiltinRelay({
        addresses: relayAddresses,
        portMin,
        portMax,
        kernel: kernel.kernels,
        onError: (err) => log.warn({ err }, 'relay'),
        log,
        onLatched: (_id, key, endpoint) => this.relayLatched(key, endpoint),
        onReleased: (id, reason) => {
          this.stream?.released(id);
          if (reason === 'idle') this.relays.released(id);
        },
      });
      this.relays.add(this.builtin);
    }
    if (this.opts.tcpPort !== false) {
      const builtin = this.builtin;
      // A stream side that cannot start (port 443 taken, no root) costs only the nodes that need
      // it: the hub serves everyone else, and says why loudly.
      const side = await startHubStreamSide({ dir: this.opts.dir, port: this.opts.tcpPort, byKey: (k) => this.view.byKey(k), join: { hub, byEnrolKey: byEnrolKeyIn(() => this.view.all()), now: Date.now }, relay: builtin && { streamSide: (id, k) => builtin.streamSide(id, k) }, listenPort: hub.listenPort, log }).catch((err: Error) => {
        log.error({ err: err.message }, 'stream side not started: nodes on networks that block UDP cannot connect');
        return undefined;
      });
      this.stream = side?.server;
      if (side && builtin) builtin.stream = { kind: 'hub' };
    }
    const stunPort = this.opts.stunPort === undefined ? DEFAULT_STUN_PORT : this.opts.stunPort;
    const stunAddresses = builtinRelayAddresses(this.opts.relayAddresses, hub.endpoints);
    if (stunPort !== null && stunAddresses.length > 0) this.stun = await StunResponder.start({ addresses: stunAddresses, port: stunPort, log });
    this.admin = new AdminServer(join(this.opts.dir, 'hub.sock'), { counters: () => this.counters(), status: () => this.status() });
    await this.admin.listen();
    this.watch.start();
    this.unsubscribe = this.store.subscribe(() => void this.refresh());
    this.every(this.opts.resyncMs ?? 60_000, () => this.sessions.snapshotAll());
    this.every(this.opts.deviceResyncMs ?? 60_000, () => {
      this.fullSyncNext = true;
      return this.refresh();
    });
    log.info({ api: `${host}:${hub.apiPort}`, device: this.device.kind, nodes: this.view.size, relay: relayAddresses.length > 0 ? relayAddresses.map(String) : null }, 'hub running');
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.joinFence?.close();
    this.watch.stop();
    this.peerSync.close();
    this.pairs.close();
    await this.stream?.close();
    await this.builtin?.close();
    this.stun?.close();
    this.timers.forEach(clearInterval);
    this.settle.clear();
    this.redecide.clear();
    this.push.clear();
    this.sessions.closeAll();
    await Promise.all([this.api.close(), this.admin.close()]);
    this.wanProbe?.close();
    await this.endpoints.close();
    await this.store.close();
  }

  private every(ms: number, fn: () => unknown): void {
    this.timers.push(setInterval(() => void Promise.resolve(fn()).catch((err: unknown) => this.opts.log.error({ err }, 'periodic task failed')), ms));
  }

  // ---- where the hub's device sees a node -----------------------------------------------------

  private endpointChanged(key: string, endpoint: Endpoint): void {
    const node = this.view.byKey(key);
    if (!node) return;
    // Recorded for client configs by the writer, off this path: the poll never waits for the store.
    if (node.kind !== 'agent') return this.endpoints.record(key, endpoint);
    if (this.nat.sighted(key, endpoint).addressChanged) this.relays.updateIp(key, endpoint.address.toString());
    // A node on the stream is seen on loopback: plain clients keep what was recorded before.
    const facing = this.clientFacing(key) ?? (endpoint.address.scope() === 'loopback' ? undefined : endpoint);
    if (facing) this.endpoints.record(key, facing);
    this.probeWan(key);
    const pending = this.settle.armed(key);
    this.settle.disarm(key);
    const why = pending ? `${node.name} changed network` : `${node.name}'s endpoint changed`;
    this.redecide.run(key, () => this.pairs.changed(key, why));
  }

  /** Probes a connected agent's router once per public endpoint (wan-probe.ts), before its pairs' first attempt. */
  private probeWan(key: string): void {
    const seen = this.nat.seen(key);
    if (!this.wanProbe || !seen || !this.nat.wanProbeable(key) || !this.sessions.ready(key)) return;
    if (this.probedAt.get(key)?.equals(seen)) return;
    if (this.wanProbe.probe(key, seen)) this.probedAt.set(key, seen);
  }

  private wanProbed(key: string, port: number | null, probed: Endpoint): void {
    if (port !== null && this.nat.wanProbed(key, port, probed.port).leakyChanged) {
      const nat = this.nat.status(key);
      this.opts.log.info({ node: this.view.byKey(key)?.name, leaky: nat?.leaky, why: nat?.leakyWhy }, 'router WAN input learned');
    }
    this.pairs.natSettled(key);
  }

  private relayLatched(key: string, endpoint: string): void {
    const e = Endpoint.tryParse(endpoint);
    if (e && this.view.byKey(key)) this.relaySeen.set(key, e.toString());
    if (!e || !this.nat.observedBy(key, e, { kind: 'relay' }).mappingChanged) return;
    const nat = this.nat.status(key);
    this.opts.log.info({ node: this.view.byKey(key)?.name, mapping: nat?.mapping, why: nat?.mappingWhy }, 'NAT mapping learned');
  }

  private async allocateRelay(a: string, b: string): Promise<RelayGrant | undefined> {
    // A side on the stream is allocated with its loopback node IP (candidates/tcp-relay.ts).
    const ipA = tcpRelay.relayIp(this.nat.view(a));
    const ipB = tcpRelay.relayIp(this.nat.view(b));
    if (!ipA || !ipB) return undefined;
    const { allocation: alloc, reason } = await this.relays.tryAllocate({ publicKey: a, ip: ipA }, { publicKey: b, ip: ipB });
    const pair = [this.view.byKey(a)?.name, this.view.byKey(b)?.name];
    if (!alloc) {
      this.opts.log.warn({ pair, reason }, 'no relay can take the pair');
      return undefined;
    }
    this.opts.log.info({ pair, relay: alloc.relay, forA: alloc.forA.toString(), forB: alloc.forB.toString() }, 'relay allocated');
    return { relayId: alloc.relayId, relay: alloc.relay, forA: alloc.forA, forB: alloc.forB, ...(alloc.streamA ? { streamA: alloc.streamA } : {}), ...(alloc.streamB ? { streamB: alloc.streamB } : {}) };
  }

  /**
   * Where plain clients should reach an agent over IPv4: its router's port mapping while it has a
   * usable one (a client behind a symmetric NAT reaches that, as it would a full-cone host), else
   * where the hub sees it. `node config` writes what is recorded, so it follows the mapping's port.
   */
  private clientFacing(key: string): Endpoint | undefined {
    const v = this.nat.view(key);
    return usableMapping(v) ?? v.seen ?? undefined;
  }

  private relayConnected(node: NodeRecord, ws: WebSocket): void {
    acceptRelay(node, ws, this.relays, (key, endpoint) => this.relayLatched(key, endpoint), this.opts.log);
  }

  // ---- what agents say ------------------------------------------------------------------------

  private onAgentMessage(s: AgentSession, m: AgentMessage): void {
    const key = s.node.publicKey;
    switch (m.type) {
      case 'report':
        return this.sessions.acceptReport(s, m.peers);
      case 'path-event':
        return this.pairs.onEvent(key, m);
      case 'hello': {
        const { kept, dropped } = keptReported(m.network.interfaces);
        if (dropped.length > 0) {
          this.droppedAddressLog.note(realClock.now(), (suppressed) =>
            this.opts.log.warn({ node: s.node.name, dropped: dropped.map(String), suppressed }, 'agent reported addresses that are neither LAN nor public; they are no candidates'),
          );
        }
        const { mappingChanged } = this.nat.reported(key, kept, m.network.listenPort, m.changed, m.network.portMapping ?? null);
        if (m.network.hubTransport) this.transports.set(key, m.network.hubTransport);
        else this.transports.delete(key);
        // Where a plain client on an IPv6 network reaches this agent (`node config --family 6`).
        const v6 = ipv6Endpoint(this.nat.view(key));
        if (v6) this.endpoints.record(key, v6);
        this.sessions.acceptReport(s, m.peers);
        // A new network is probed afresh; the probe starts before the pairs, whose first attempt waits for it.
        if (m.changed || !s.ready) this.probedAt.delete(key);
        const wasReady = s.ready;
        const mappingAnswered = this.mappingWait.report(key, m.network.portMappingPending === true, !wasReady);
        if (!s.ready) {
          s.ready = true;
          this.probeWan(key);
          this.pairs.connected(key, m.peers);
        } else if (m.changed) {
          // The hello itself crossed the tunnel from the new network, so the next device read
          // (≤ 20 ms) sees the new endpoint and re-decides the pairs; if only the LAN changed, do it here.
          this.settle.arm(key, NETWORK_SETTLE_MS, () => this.pairs.changed(key, `${s.node.name} changed network`));
        }
        if (mappingChanged) {
          const facing = this.clientFacing(key);
          if (facing?.family === 4) this.endpoints.record(key, facing);
        }
        // Pairs that waited for this answer have just started with it.
        if (wasReady && !m.changed && mappingChanged && !mappingAnswered) {
          // A router that maps (or stopped mapping) the node's port: pairs not yet direct may now be.
          this.pairs.mappingChanged(key, `${s.node.name}'s router ${m.network.portMapping ? `maps ${m.network.portMapping.external} (${m.network.portMapping.protocol})` : 'no longer maps its port'}`);
        }
        return;
      }
    }
  }

  // ---- directory changes ----------------------------------------------------------------------

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
    // Fence a join tunnel's address before its one-time peer is on the device (join-fence.ts).
    await this.joinFence?.apply(this.view.all()).catch((err: unknown) => this.opts.log.error({ err }, 'fencing join tunnels failed; retrying at the next change or resync'));
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
      this.nat.forget(n.publicKey);
      this.relaySeen.delete(n.publicKey);
      this.watch.forget(n.publicKey);
      this.redecide.forget(n.publicKey);
      this.push.forget(n.publicKey);
    }
    this.sessions.apply(delta);
    for (const key of agentsWhosePairsChanged(delta, this.view.all())) this.pairs.refresh(key);
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

  // ---- status ---------------------------------------------------------------------------------

  private counters(): HubStatusJson['hub'] {
    return {
      interface: this.opts.ifname,
      device: this.device.kind,
      agentsConnected: this.sessions.size,
      polls: this.watch.stats.polls,
      meanPollMs: this.watch.meanPollMs,
      pushes: this.sessions.pushes,
      groupsEnforced: this.forwardFilter !== undefined,
      nodes: this.view.size,
      revision: this.view.revision,
      endpointBacklog: this.endpoints.backlog,
      pairs: this.pairs.size,
      store: storeStatus(this.endpoints.health, Date.now()),
    };
  }

  private async status(): Promise<HubStatusJson> {
    const counters = new Map((await this.relays.stats()).map((x) => [x.id, x]));
    return {
      hub: this.counters(),
      nodes: nodeStatus(this.settings, this.view.all(), (k) => this.watch.peer(k), this.sessions.values(), (k) => this.nat.status(k), (k) => this.transports.get(k)),
      pairs: this.pairs.status().map((p) => {
        const c = p.relayId ? counters.get(p.relayId) : undefined;
        return { ...p, relayed: c ? { aToB: c.aToB, bToA: c.bToA, dropped: c.dropped, relay: c.relay, latched: { a: c.a.latched, b: c.b.latched } } : null };
      }),
      relays: this.relays.relays(),
    };
  }
}

function* joined(nodes: Iterable<NodeRecord>): Iterable<NodeRecord> {
  for (const n of nodes) if (!isPending(n)) yield n;
}

const sameGroups = (a: NodeRecord, b: NodeRecord) => a.groups.join() === b.groups.join();

/** The agents whose set of pairs may have changed in a batch: one came, went, joined, changed key or groups. */
function agentsWhosePairsChanged(d: ViewDelta, all: Iterable<NodeRecord>): Set<string> {
  const keys = new Set<string>();
  if (d.reset) for (const n of all) if (n.kind === 'agent') keys.add(n.publicKey);
  for (const n of [...d.added, ...d.removed]) if (n.kind === 'agent') keys.add(n.publicKey);
  for (const { before: b, after: a } of d.changed) {
    if (a.kind !== 'agent' || (isPending(a) === isPending(b) && a.publicKey === b.publicKey && sameGroups(a, b))) continue;
    keys.add(a.publicKey);
    keys.add(b.publicKey);
  }
  return keys;
}
