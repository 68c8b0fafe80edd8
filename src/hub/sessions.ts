import type { WebSocket } from 'ws';
import { HEARTBEAT, heartbeat, type HeartbeatOptions } from '../core/heartbeat.js';
import type { Logger } from '../core/log.js';
import { agentMessageSchema, decode, PROTOCOL_VERSION, type AgentMessage, type AgentSettings, type HubMessage, type PeerReport } from '../core/protocol.js';
import type { PeerState } from '../core/wireguard/uapi.js';
import { LogThrottle, TokenBucket } from '../core/rate.js';
import type { DirectoryView, ViewDelta } from './directory-view.js';
import { canSee, peerInfo } from './peer-view.js';
import { isPending, type HubSettings, type NodeRecord } from './store/model.js';
import { parseJson } from '../core/json.js';

/**
 * The agents' control connections (WebSockets inside their tunnels) and everything the hub
 * pushes over them: the snapshot on connect, each change of a peer an agent may see, and the
 * pair coordinator's commands. One session per agent: a reconnect replaces the old one.
 */

export interface AgentSession {
  node: NodeRecord;
  ws: WebSocket;
  /** Set once the agent said hello: until then its pairs wait. */
  ready: boolean;
  reports: Map<string, PeerReport>;
  /** What this agent was told about each peer it may see (a signature, to push only changes). */
  visible: Map<string, string>;
  proxied: boolean;
  /** How much this agent may make the hub decode (see MESSAGE_BUDGET). */
  budget: { messages: TokenBucket; bytes: TokenBucket; dropped: number; log: LogThrottle };
}

/**
 * What one agent may make the hub do. A working agent sends a hello, a report every 10 s and a
 * few path events per attempt; a 4 MiB message costs the hub ~74 ms of CPU to decode (measured in
 * review). So: 50 messages a second (200 saved up) and 1 MiB a second (8 MiB saved up); beyond
 * that messages are dropped undecoded and counted, and the agent's next in-budget message goes on.
 * At most one log line per agent per 30 s says what was dropped or malformed.
 */
const MESSAGE_BUDGET = { messagesPerSec: 50, messageBurst: 200, bytesPerSec: 1 << 20, byteBurst: 8 << 20, logEveryMs: 30_000 };

export interface SessionDeps {
  hub: HubSettings;
  view: DirectoryView;
  settingsFor(node: NodeRecord): AgentSettings;
  /** The hub device's last reading of a peer. */
  seen(publicKey: string): PeerState | undefined;
  /** A valid message from a session's agent. */
  onMessage(s: AgentSession, m: AgentMessage): void;
  /** The session's agent disconnected (a replaced session does not count). */
  onGone(s: AgentSession): void;
  log: Logger;
  /** Ping/pong on every session (core/heartbeat.ts); tests pass a fake clock. */
  heartbeat?: HeartbeatOptions;
}

/** What an agent is told about a peer, apart from where the hub sees it: a change of it is pushed. */
function signature(n: NodeRecord): string {
  return JSON.stringify([n.name, n.kind, n.address, n.routes, n.listenPort]);
}

const sameGroups = (a: NodeRecord, b: NodeRecord) => a.groups.join() === b.groups.join();

export class AgentSessions {
  private sessions = new Map<string, AgentSession>();
  /** Pushes of peers' endpoint and freshness changes, for status. */
  pushes = 0;

  constructor(private readonly deps: SessionDeps) {}

  get size(): number {
    return this.sessions.size;
  }

  get(publicKey: string): AgentSession | undefined {
    return this.sessions.get(publicKey);
  }

  values(): IterableIterator<AgentSession> {
    return this.sessions.values();
  }

  /** Whether the agent is connected and said hello. */
  ready(publicKey: string): boolean {
    return this.sessions.get(publicKey)?.ready === true;
  }

  attach(node: NodeRecord, ws: WebSocket): void {
    const key = node.publicKey;
    this.sessions.get(key)?.ws.terminate();
    const now = Date.now();
    const b = MESSAGE_BUDGET;
    const session: AgentSession = {
      node,
      ws,
      ready: false,
      reports: new Map(),
      visible: new Map(),
      proxied: node.proxied,
      budget: { messages: new TokenBucket(b.messagesPerSec, b.messageBurst, now), bytes: new TokenBucket(b.bytesPerSec, b.byteBurst, now), dropped: 0, log: new LogThrottle(b.logEveryMs) },
    };
    this.sessions.set(key, session);
    this.deps.log.info({ agent: node.name }, 'agent connected');
    ws.on('message', (data, isBinary) => {
      const size = Array.isArray(data) ? data.reduce((n, d) => n + d.length, 0) : data instanceof ArrayBuffer ? data.byteLength : data.length;
      const at = Date.now();
      const budget = session.budget;
      if (isBinary || !budget.messages.take(1, at) || !budget.bytes.take(size, at)) {
        budget.dropped++;
        budget.log.note(at, (more) => this.deps.log.warn({ agent: session.node.name, dropped: budget.dropped, more }, 'agent over its message budget (or binary): messages dropped'));
        return;
      }
      const text = data.toString();
      let m: AgentMessage;
      try {
        m = decode(agentMessageSchema, text, `message from ${session.node.name}`);
      } catch (err) {
        if (isOldHello(text)) {
          this.deps.log.error({ agent: session.node.name }, `agent ${session.node.name} speaks an older protocol than this hub (${PROTOCOL_VERSION}); upgrade wgp2p on it`);
          ws.close(4002, `protocol ${PROTOCOL_VERSION} required: upgrade wgp2p on this node`);
          return;
        }
        budget.log.note(at, (more) => this.deps.log.warn({ agent: session.node.name, err: (err as Error).message.slice(0, 200), more }, 'malformed message ignored'));
        return;
      }
      this.deps.onMessage(session, m);
    });
    const gone = () => {
      if (this.sessions.get(key) !== session) return;
      this.sessions.delete(key);
      this.deps.onGone(session);
    };
    ws.on('close', gone);
    ws.on('error', gone);
    heartbeat(ws, this.deps.heartbeat ?? HEARTBEAT, () => this.deps.log.info({ agent: node.name }, 'agent stopped answering pings: disconnected'));
    this.sendSnapshot(session);
  }

  send(publicKey: string, m: HubMessage): void {
    const s = this.sessions.get(publicKey);
    if (s) sendTo(s, m);
  }

  /** Everything an agent may see, from scratch: on connect, when its own view changed, and as a periodic safety net. */
  sendSnapshot(s: AgentSession): void {
    const now = Date.now();
    const visible = this.deps.view.visibleTo(s.node);
    s.visible = new Map(visible.map((n) => [n.publicKey, signature(n)] as const));
    sendTo(s, { type: 'snapshot', settings: this.deps.settingsFor(s.node), peers: visible.map((c) => peerInfo(this.deps.hub, c, this.deps.seen(c.publicKey), now)) });
  }

  snapshotAll(): void {
    for (const s of this.sessions.values()) this.sendSnapshot(s);
  }

  /**
   * Where the hub sees a plain client, or whether it is fresh, changed: the agents that serve it
   * point at it again. Another agent's endpoint is not pushed: agents get it as a candidate.
   */
  pushPeer(node: NodeRecord, seen: PeerState): void {
    if (node.kind === 'agent') return;
    const now = Date.now();
    for (const s of this.sessions.values()) {
      if (!s.visible.has(node.publicKey)) continue;
      sendTo(s, { type: 'peer', peer: peerInfo(this.deps.hub, node, seen, now) });
      this.pushes++;
    }
  }

  /** The agent's latest report of every peer it has: only of the peers it may see (another group's nodes are none of its business). */
  acceptReport(s: AgentSession, peers: PeerReport[]): void {
    s.reports.clear();
    for (const p of peers) if (s.visible.has(p.publicKey)) s.reports.set(p.publicKey, p);
  }

  /** Tells each connected agent about the changed nodes it may now see, see differently, or no longer see. */
  apply(delta: ViewDelta): void {
    const ownChange = new Map(delta.changed.map((c) => [c.after.publicKey, c.before]));
    for (const s of [...this.sessions.values()]) {
      const node = this.deps.view.byKey(s.node.publicKey);
      if (!node || isPending(node)) {
        s.ws.close(4003, 'node removed');
        this.sessions.delete(s.node.publicKey);
        this.deps.onGone(s);
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
        this.pushVisible(s);
        continue;
      }
      for (const n of delta.removed) this.pushOne(s, n.publicKey, undefined);
      for (const c of delta.changed) {
        if (c.before.publicKey !== c.after.publicKey) this.pushOne(s, c.before.publicKey, undefined);
        this.pushOne(s, c.after.publicKey, c.after);
      }
      for (const n of delta.added) this.pushOne(s, n.publicKey, n);
    }
  }

  closeAll(): void {
    for (const s of this.sessions.values()) s.ws.terminate();
  }

  /** Tells an agent about peers it may now see, changed, or may no longer see (all of them: its own groups changed). */
  private pushVisible(s: AgentSession): void {
    const now = Date.now();
    const next = new Map(this.deps.view.visibleTo(s.node).map((n) => [n.publicKey, signature(n)] as const));
    for (const k of s.visible.keys()) if (!next.has(k)) sendTo(s, { type: 'peer-removed', publicKey: k });
    for (const [k, sig] of next) if (s.visible.get(k) !== sig) sendTo(s, { type: 'peer', peer: peerInfo(this.deps.hub, this.deps.view.byKey(k)!, this.deps.seen(k), now) });
    s.visible = next;
  }

  /** The same for one peer: `n` is its record now, undefined if it is gone. */
  private pushOne(s: AgentSession, key: string, n: NodeRecord | undefined): void {
    const had = s.visible.get(key);
    if (!n || !canSee(s.node, n)) {
      if (had === undefined) return;
      s.visible.delete(key);
      sendTo(s, { type: 'peer-removed', publicKey: key });
      return;
    }
    const sig = signature(n);
    if (had === sig) return;
    s.visible.set(key, sig);
    sendTo(s, { type: 'peer', peer: peerInfo(this.deps.hub, n, this.deps.seen(key), Date.now()) });
  }
}

function sendTo(s: AgentSession, m: HubMessage): void {
  if (s.ws.readyState === s.ws.OPEN) s.ws.send(JSON.stringify(m));
}

/** A hello without this protocol's version: an agent of an earlier release. */
function isOldHello(text: string): boolean {
  try {
    const raw = parseJson(text) as { type?: unknown; protocol?: unknown } | null;
    return raw?.type === 'hello' && raw.protocol !== PROTOCOL_VERSION;
  } catch {
    return false;
  }
}
