import type { Candidate, NodeView } from '../core/candidates/index.js';
import { usableMapping } from '../core/candidates/mapped.js';
import type { Knowledge, Leaky, NatBehaviour } from '../core/nat.js';
import type { Prefixed } from '../core/net/cidr.js';
import type { Endpoint } from '../core/net/endpoint.js';
import type { PortMappingProtocol } from '../core/protocol.js';

/**
 * Everything the hub knows about each agent's network, and the only place that changes it. It is
 * learned from what the hub can observe without STUN:
 * - the endpoint its own WireGuard device sees the node at (`sighted`);
 * - the node's interface addresses and listen port, from its agent (`reported`);
 * - the endpoint a second observer sees it at: the relay, or a peer on a direct path (`observedBy`);
 * - the outcome of direct attempts with other nodes (`attemptEnded`), and whether the node's port
 *   mapping let a peer's packets in (`candidateFailed`, `candidateWorked`);
 * - whether its router takes unsolicited WAN input: the hub's own probe (`wanProbed`), or a
 *   peer that saw another port than the hub although the NAT keeps ports, when the peer's packet
 *   may have reached the router first (`observedBy`).
 * Each fact carries its source as data; the words for status and reasons are derived from it.
 */

/**
 * Who else saw the node. `peerFirst`: the peer's packet may have reached the node's router before
 * the node's own packet toward it left (the node did not open its NAT first); the relay only
 * ever answers, so its packets never arrive first.
 */
export type Observer = { kind: 'relay' } | { kind: 'peer'; name: string; peerFirst?: boolean };

export type MappingSource =
  | { kind: 'unseen' }
  | { kind: 'over-ipv6' }
  | { kind: 'no-nat' }
  | { kind: 'listen-unknown' }
  | { kind: 'port-kept'; port: number }
  | { kind: 'port-taken'; port: number }
  | { kind: 'port-changed'; listen: number; seen: number }
  | { kind: 'observer'; by: Observer; port: number; hubPort: number }
  | { kind: 'network-changed' };

export type LeakySource =
  | { kind: 'untested' }
  | { kind: 'network-changed' }
  /** The hub sent to the node's public port from another of its ports first; then the node's packet there came from `port`. */
  | { kind: 'wan-probe'; port: number; hubPort: number }
  /** A peer whose packet may have come first saw the node at `port`, the hub at `hubPort`, and the NAT keeps ports toward the hub. */
  | { kind: 'peer-first'; peer: string; port: number; hubPort: number };

export type FilteringSource = { kind: 'untested' } | { kind: 'network-changed' } | { kind: 'accepted-symmetric-peer' } | { kind: 'refused-symmetric-peer' };

/** A port mapping an agent reported, and when (hub's clock): it counts only until it expires. */
export interface ReportedMapping {
  protocol: PortMappingProtocol;
  external: Endpoint;
  expiresAt: number;
}

/**
 * What attempts taught about one reported mapping: how many in a row its router did not forward
 * (the peer sent to it, both agents were ready, and this node heard nothing), and until when the
 * hub leaves it out. A router may map and still not forward (a firewall in front of it, a
 * miniupnpd whose rules are in a table nothing jumps to, a NAT beyond it that answers for the same
 * address): a pair would otherwise retry it every 8 s for ever.
 */
interface MappingTrust {
  external: Endpoint;
  failures: number;
  distrustedUntil: number | null;
}

/**
 * Two failures in a row before the mapping is left out: one attempt can fail for reasons of its
 * own (an agent stalled on a loaded machine), and a pair's first retry comes 1 s later, so a
 * mapping that does not forward costs two attempts. Then 10 min, doubling with each further
 * failure, at most 2 h (the lease asked for: by then the agent has renewed or replaced it). A
 * mapping that carries one attempt, another mapping, or a network change starts over.
 */
export const MAPPING_DISTRUST = { afterFailures: 2, firstMs: 10 * 60_000, maxMs: 2 * 3600_000 } as const;

/** The side of an attempt, x (first key) or y: the shape of the attempt machine's Sides. */
interface BySide<T> {
  a: T;
  b: T;
}

interface Facts {
  seen: Endpoint | null;
  portMapping: ReportedMapping | null;
  mappingTrust: MappingTrust | null;
  interfaces: readonly Prefixed[];
  listenPort: number | null;
  mapping: Knowledge;
  mappingSource: MappingSource;
  filtering: Knowledge;
  filteringSource: FilteringSource;
  leaky: Leaky;
  leakySource: LeakySource;
}

export interface NatStatus {
  mapping: Knowledge;
  mappingWhy: string;
  filtering: Knowledge;
  filteringWhy: string;
  leaky: Leaky;
  leakyWhy: string;
  /** The node's interface addresses as its agent reported them. */
  lan: string[];
  /** What its router maps for it, as its agent reported it (null: nothing). */
  portMapping: { protocol: PortMappingProtocol; external: string; expiresInMs: number; usable: boolean; problem: string | null } | null;
}

const observerName = (o: Observer) => (o.kind === 'relay' ? 'the relay' : `peer ${o.name}`);

export function explainMapping(s: MappingSource): string {
  switch (s.kind) {
    case 'unseen':
      return 'not seen yet';
    case 'over-ipv6':
      return 'reaches the hub over IPv6; its IPv4 NAT is not seen';
    case 'no-nat':
      return 'public address, no NAT';
    case 'listen-unknown':
      return 'listen port unknown';
    case 'port-kept':
      return `NAT kept port ${s.port}`;
    case 'port-taken':
      return `port ${s.port} taken by another node behind the same NAT`;
    case 'port-changed':
      return `NAT changed the port (${s.listen} -> ${s.seen}), so it maps per destination`;
    case 'observer':
      return s.port === s.hubPort ? `seen by ${observerName(s.by)} at the same port as by the hub` : `seen by ${observerName(s.by)} at port ${s.port}, by the hub at ${s.hubPort}: maps per destination`;
    case 'network-changed':
      return 'network changed';
  }
}

export function explainFiltering(s: FilteringSource): string {
  switch (s.kind) {
    case 'untested':
      return 'no attempt yet';
    case 'network-changed':
      return 'network changed';
    case 'accepted-symmetric-peer':
      return 'accepted a symmetric peer on a direct path';
    case 'refused-symmetric-peer':
      return 'a symmetric peer could not reach it directly';
  }
}

export function explainLeaky(s: LeakySource): string {
  switch (s.kind) {
    case 'untested':
      return 'not probed yet';
    case 'network-changed':
      return 'network changed';
    case 'wan-probe':
      return s.port === s.hubPort
        ? `an unsolicited packet to port ${s.hubPort} left that port to the node: its router drops WAN input`
        : `after an unsolicited packet to port ${s.hubPort}, the node's packet from that port came from ${s.port}: its router takes WAN input`;
    case 'peer-first':
      return `peer ${s.peer} saw it at port ${s.port}, the hub at ${s.hubPort}, after the peer's packet came first: its router takes WAN input`;
  }
}

const FRESH = { mapping: 'unknown', mappingSource: { kind: 'unseen' }, filtering: 'unknown', filteringSource: { kind: 'untested' }, leaky: 'unknown', leakySource: { kind: 'untested' } } as const;

export interface NatKnowledgeDeps {
  name(key: string): string;
  /** The listen port the node's config has, until its agent reports one. */
  configuredListenPort(key: string): number | null;
  /** The hub's clock, for how long a reported port mapping lasts. Default: Date.now. */
  now?(): number;
  /** For the one line when a mapping is left out. Default: silent. */
  log?: { warn(obj: object, msg: string): void };
  /** A node's mapping was just left out (see candidateFailed): where plain clients reach it changed. */
  mappingDistrusted?(key: string): void;
}

export class NatKnowledge {
  private facts = new Map<string, Facts>();
  /** Nodes by the public IPv4 address the hub sees them at: behind one NAT, ports say less. */
  private byAddress = new Map<string, Set<string>>();

  constructor(private readonly deps: NatKnowledgeDeps) {}

  private get(key: string): Facts {
    let f = this.facts.get(key);
    if (!f) {
      f = { seen: null, portMapping: null, mappingTrust: null, interfaces: [], listenPort: this.deps.configuredListenPort(key), ...FRESH };
      this.facts.set(key, f);
    }
    return f;
  }

  private index(key: string, from: Endpoint | null, to: Endpoint | null): void {
    if (from) this.byAddress.get(from.address.toString())?.delete(key);
    if (to) {
      const k = to.address.toString();
      if (!this.byAddress.has(k)) this.byAddress.set(k, new Set());
      this.byAddress.get(k)!.add(key);
    }
  }

  /**
   * The hub's device saw the node at `endpoint`. A new public address is a new network:
   * everything learned about the old one is dropped. Returns whether the address changed (the
   * relay then has to accept the node from its new address).
   */
  sighted(key: string, endpoint: Endpoint): { addressChanged: boolean } {
    const f = this.get(key);
    const before = f.seen;
    const sameAddress = before !== null && before.address.equals(endpoint.address);
    this.index(key, before, endpoint);
    if (sameAddress) f.seen = endpoint;
    else this.facts.set(key, { ...f, seen: endpoint, ...FRESH });
    this.classify(key);
    return { addressChanged: before !== null && !sameAddress };
  }

  /**
   * The agent reported its interfaces, listen port and port mapping; `changed`: its network
   * changed, so what attempts taught is stale. Returns whether the usable mapping changed (a
   * new mapped endpoint may open a direct path that was impossible).
   */
  reported(key: string, interfaces: readonly Prefixed[], listenPort: number, changed: boolean, portMapping: { protocol: PortMappingProtocol; external: Endpoint; expiresInMs: number } | null = null): { mappingChanged: boolean } {
    const f = this.get(key);
    const before = this.usableMapping(f);
    f.interfaces = interfaces;
    f.listenPort = listenPort;
    f.portMapping = portMapping && { protocol: portMapping.protocol, external: portMapping.external, expiresAt: this.now() + portMapping.expiresInMs };
    // What attempts taught is about that one mapping, on that network.
    if (changed || !portMapping || (f.mappingTrust && !f.mappingTrust.external.equals(portMapping.external))) f.mappingTrust = null;
    if (changed) {
      f.mapping = 'unknown';
      f.mappingSource = { kind: 'network-changed' };
      f.filtering = 'unknown';
      f.filteringSource = { kind: 'network-changed' };
      f.leaky = 'unknown';
      f.leakySource = { kind: 'network-changed' };
    }
    this.classify(key);
    const after = this.usableMapping(f);
    return { mappingChanged: !(before === after || (before !== null && after !== null && before.equals(after))) };
  }

  private now(): number {
    return this.deps.now ? this.deps.now() : Date.now();
  }

  /**
   * The reported mapping while it lasts and attempts have not found that it does not forward;
   * what it is worth otherwise is for the candidate kind (candidates/mapped.ts) and the attempt.
   */
  private usableMapping(f: Facts): Endpoint | null {
    if (!f.portMapping || f.portMapping.expiresAt <= this.now()) return null;
    return this.distrusted(f) ? null : f.portMapping.external;
  }

  private distrusted(f: Facts): boolean {
    const t = f.mappingTrust;
    return t !== null && t.distrustedUntil !== null && t.distrustedUntil > this.now() && f.portMapping !== null && t.external.equals(f.portMapping.external);
  }

  /** The node whose mapping candidate `c` of pair (x, y) goes through, and its side, if any. */
  private mappingSide(x: string, y: string, c: Candidate): { key: string; side: 'a' | 'b'; f: Facts } | null {
    const which = c.kind.reliesOnMappingOf?.(this.view(x), this.view(y)) ?? null;
    if (which === null) return null;
    const key = which === 'x' ? x : y;
    const f = this.get(key);
    return f.portMapping ? { key, side: which === 'x' ? 'a' : 'b', f } : null;
  }

  /**
   * A candidate of pair (x, y) failed. If it went through a node's port mapping, both agents were
   * ready and that node heard nothing, the mapping did not forward: counted, and after
   * MAPPING_DISTRUST.afterFailures in a row it is left out of the node's view (so of every pair's
   * candidates and of plain clients' configs) for a while. Logged once per mapping.
   */
  candidateFailed(x: string, y: string, c: Candidate, o: { ready: BySide<boolean>; heard: BySide<boolean> }): void {
    const m = this.mappingSide(x, y, c);
    if (!m || !o.ready.a || !o.ready.b || o.heard[m.side]) return;
    const external = m.f.portMapping!.external;
    const t = m.f.mappingTrust && m.f.mappingTrust.external.equals(external) ? m.f.mappingTrust : { external, failures: 0, distrustedUntil: null };
    m.f.mappingTrust = t;
    t.failures++;
    const over = t.failures - MAPPING_DISTRUST.afterFailures;
    if (over < 0) return;
    const first = t.distrustedUntil === null;
    const forMs = Math.min(MAPPING_DISTRUST.maxMs, MAPPING_DISTRUST.firstMs * 2 ** Math.min(over, 10));
    t.distrustedUntil = this.now() + forMs;
    this.deps.mappingDistrusted?.(m.key);
    if (first) this.deps.log?.warn({ node: this.deps.name(m.key), mapping: external.toString(), protocol: m.f.portMapping!.protocol, failures: t.failures, retryInMin: Math.round(forMs / 60_000) }, "the node's router maps this port but did not forward a peer's packets through it; not tried again for a while (logged once per mapping)");
  }

  /** Candidate `c` of pair (x, y) carried the pair: if it went through a mapping, that mapping forwards. */
  candidateWorked(x: string, y: string, c: Candidate): void {
    const m = this.mappingSide(x, y, c);
    if (m) m.f.mappingTrust = null;
  }

  /**
   * Someone other than the hub saw the node at `endpoint`. Same address and port as the hub sees:
   * the mapping does not depend on the destination; another port: it does. Evidence from two
   * destinations is stronger than any guess from ports, and later guesses keep it.
   */
  observedBy(key: string, endpoint: Endpoint, by: Observer): { mappingChanged: boolean } {
    const f = this.facts.get(key);
    if (!f?.seen || !f.seen.address.equals(endpoint.address)) return { mappingChanged: false };
    // A NAT that kept the port toward the hub and gave this peer another one, whose packet may
    // have come first, is a leaky router: its mapping does not depend on the destination.
    if (by.kind === 'peer' && by.peerFirst && endpoint.port !== f.seen.port && f.mapping === 'independent' && f.mappingSource.kind === 'port-kept') {
      f.leaky = 'yes';
      f.leakySource = { kind: 'peer-first', peer: by.name, port: endpoint.port, hubPort: f.seen.port };
      return { mappingChanged: false };
    }
    const before = f.mapping;
    f.mapping = endpoint.port === f.seen.port ? 'independent' : 'dependent';
    f.mappingSource = { kind: 'observer', by, port: endpoint.port, hubPort: f.seen.port };
    return { mappingChanged: f.mapping !== before };
  }

  /** A direct attempt across both NATs ended. A symmetric peer's packets get through only an independent filter. */
  attemptEnded(x: string, y: string, succeeded: boolean): void {
    const fx = this.get(x);
    const fy = this.get(y);
    // Only filtering is learned, so neither side's lesson changes what the other's is judged on.
    const learn = (self: Facts, other: Facts) => {
      if (other.mapping !== 'dependent' || self.mapping === 'dependent') return;
      self.filtering = succeeded ? 'independent' : 'dependent';
      self.filteringSource = { kind: succeeded ? 'accepted-symmetric-peer' : 'refused-symmetric-peer' };
    };
    learn(fx, fy);
    learn(fy, fx);
  }

  /**
   * The hub's probe of the node's router (hub/wan-probe.ts): an unsolicited datagram to port
   * `probed` of the node's public address, then the node's own datagram from that port inside,
   * seen at `port`. A router that dropped the probe keeps the port; one that took it gives
   * another. Only a NAT that keeps ports can tell: a node whose NAT changed its port toward the
   * hub learns nothing here.
   */
  wanProbed(key: string, port: number, probed: number): { leakyChanged: boolean } {
    const f = this.facts.get(key);
    if (!f?.seen || f.mapping !== 'independent' || f.mappingSource.kind !== 'port-kept') return { leakyChanged: false };
    const hubPort = probed;
    const before = f.leaky;
    f.leaky = port === hubPort ? 'no' : 'yes';
    f.leakySource = { kind: 'wan-probe', port, hubPort };
    return { leakyChanged: f.leaky !== before };
  }

  /** Whether a WAN probe can tell anything about the node's router: seen over IPv4 behind a NAT that kept its port. */
  wanProbeable(key: string): boolean {
    const f = this.facts.get(key);
    return f?.seen?.family === 4 && f.mappingSource.kind === 'port-kept';
  }

  forget(key: string): void {
    const f = this.facts.get(key);
    if (f) this.index(key, f.seen, null);
    this.facts.delete(key);
  }

  /** Where the hub sees the node's public IP, for a relay allocation. */
  seen(key: string): Endpoint | null {
    return this.facts.get(key)?.seen ?? null;
  }

  view(key: string): NodeView {
    const f = this.get(key);
    return { name: this.deps.name(key), seen: f.seen, interfaces: f.interfaces, listenPort: f.listenPort, nat: this.behaviour(f), mapped: this.usableMapping(f) };
  }

  status(key: string): NatStatus | undefined {
    const f = this.facts.get(key);
    if (!f) return undefined;
    const b = this.behaviour(f);
    const m = f.portMapping;
    const t = f.mappingTrust;
    const problem = this.distrusted(f) && t ? `did not forward in ${t.failures} attempts in a row; tried again in ${Math.ceil((t.distrustedUntil! - this.now()) / 60_000)} min` : null;
    const portMapping = m && { protocol: m.protocol, external: m.external.toString(), expiresInMs: Math.max(0, m.expiresAt - this.now()), usable: usableMapping(this.view(key)) !== undefined, problem };
    return { mapping: b.mapping, mappingWhy: b.mappingWhy, filtering: b.filtering, filteringWhy: b.filteringWhy, leaky: b.leaky, leakyWhy: b.leakyWhy, lan: f.interfaces.map((p) => p.toString()), portMapping };
  }

  private behaviour(f: Facts): NatBehaviour {
    return { mapping: f.mapping, filtering: f.filtering, mappingWhy: explainMapping(f.mappingSource), filteringWhy: explainFiltering(f.filteringSource), leaky: f.leaky, leakyWhy: explainLeaky(f.leakySource) };
  }

  /** Judges the mapping from the hub's own sighting and the node's report, unless a second observer already settled it. */
  private classify(key: string): void {
    const f = this.get(key);
    const set = (mapping: Knowledge, source: MappingSource) => {
      f.mapping = mapping;
      f.mappingSource = source;
    };
    if (f.seen === null) return;
    if (f.mappingSource.kind === 'observer') return;
    if (f.seen.family === 6) return set('unknown', { kind: 'over-ipv6' });
    if (f.interfaces.some((p) => p.address.equals(f.seen!.address))) return set('independent', { kind: 'no-nat' });
    if (f.listenPort === null) return set('unknown', { kind: 'listen-unknown' });
    if (f.seen.port === f.listenPort) return set('independent', { kind: 'port-kept', port: f.listenPort });
    // Behind one NAT, two nodes cannot both keep the same port: a changed port there says nothing.
    const others = [...(this.byAddress.get(f.seen.address.toString()) ?? [])].filter((k) => k !== key);
    if (others.some((k) => this.facts.get(k)?.seen?.port === f.listenPort)) return set('unknown', { kind: 'port-taken', port: f.listenPort });
    set('dependent', { kind: 'port-changed', listen: f.listenPort, seen: f.seen.port });
  }
}
