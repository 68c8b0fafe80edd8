import { contains, parseCidr, parseIPv4 } from '../core/ipv4.js';

/**
 * What the hub knows about one node's NAT, learned from what it can observe without STUN:
 * the endpoint its own WireGuard device sees, the port the node's config listens on, the node's
 * LAN addresses, the port the relay sees, and the outcome of direct attempts with other nodes.
 *
 * Two properties decide whether hole punching can work (RFC 4787):
 * - mapping: does the NAT give the node the same public port toward every destination?
 *   "dependent" (symmetric) NATs give a new port per destination, so a peer can never be told
 *   the port to send to;
 * - filtering: does the NAT let in packets from a host the node has not sent to (from that
 *   exact port)? Only "independent" filtering (full cone, no firewall) accepts a symmetric
 *   peer's packets, which come from a port nobody could predict.
 * A pair is hopeless when both map per destination, or one does and the other filters.
 */

export type Knowledge = 'independent' | 'dependent' | 'unknown';

export interface NatFacts {
  /** Public IP and port the hub's WireGuard sees the node at. */
  publicIp: string | null;
  publicPort: number | null;
  /** The port the node's WireGuard listens on (its config, or what the agent reports). */
  listenPort: number | null;
  /** LAN addresses the agent reports, with prefix (e.g. 192.168.1.2/24). */
  lan: string[];
  mapping: Knowledge;
  mappingWhy: string;
  filtering: Knowledge;
  filteringWhy: string;
}

export function emptyFacts(listenPort: number | null): NatFacts {
  return { publicIp: null, publicPort: null, listenPort, lan: [], mapping: 'unknown', mappingWhy: 'not seen yet', filtering: 'unknown', filteringWhy: 'no attempt yet' };
}

function split(endpoint: string): { ip: string; port: number } {
  const i = endpoint.lastIndexOf(':');
  return { ip: endpoint.slice(0, i), port: Number(endpoint.slice(i + 1)) };
}

const lanIps = (f: NatFacts) => f.lan.map((a) => a.split('/')[0]);

/**
 * The hub saw the node at `endpoint`. A new public IP is a new network: everything learned about
 * the old one is dropped. `othersOnIp` are the facts of other nodes seen at the same public IP:
 * behind one NAT, two nodes cannot both keep port 51820, so a changed port there says nothing.
 */
export function observe(f: NatFacts, endpoint: string, othersOnIp: NatFacts[]): NatFacts {
  const { ip, port } = split(endpoint);
  const next: NatFacts = f.publicIp === ip ? { ...f, publicPort: port } : { ...emptyFacts(f.listenPort), lan: f.lan, publicIp: ip, publicPort: port };
  return classifyMapping(next, othersOnIp);
}

/** The agent reported its LAN addresses (and listen port): a public IP among them means no NAT at all. */
export function withNetwork(f: NatFacts, lan: string[], listenPort: number, othersOnIp: NatFacts[]): NatFacts {
  return classifyMapping({ ...f, lan, listenPort }, othersOnIp);
}

/** The agent's network changed: what we learned from attempts belonged to the old network. */
export function forgetLearned(f: NatFacts): NatFacts {
  return { ...f, mapping: 'unknown', mappingWhy: 'network changed', filtering: 'unknown', filteringWhy: 'network changed' };
}

function classifyMapping(f: NatFacts, othersOnIp: NatFacts[]): NatFacts {
  if (f.publicIp === null || f.publicPort === null) return f;
  // Evidence from two destinations (the relay, a direct peer) is stronger than any guess: keep it.
  if (f.mappingWhy.startsWith('seen by')) return f;
  if (lanIps(f).includes(f.publicIp)) return { ...f, mapping: 'independent', mappingWhy: 'public address, no NAT' };
  if (f.listenPort === null) return { ...f, mapping: 'unknown', mappingWhy: 'listen port unknown' };
  if (f.publicPort === f.listenPort) return { ...f, mapping: 'independent', mappingWhy: `NAT kept port ${f.listenPort}` };
  if (othersOnIp.some((o) => o.publicPort === f.listenPort)) return { ...f, mapping: 'unknown', mappingWhy: `port ${f.listenPort} taken by another node behind the same NAT` };
  return { ...f, mapping: 'dependent', mappingWhy: `NAT changed the port (${f.listenPort} -> ${f.publicPort}), so it maps per destination` };
}

/**
 * Someone other than the hub (the relay, or a peer on a direct path) saw the node at
 * `endpoint`. Same IP and port as the hub sees: the mapping does not depend on the destination;
 * another port: it does.
 */
export function seenElsewhere(f: NatFacts, endpoint: string, by: string): NatFacts {
  const { ip, port } = split(endpoint);
  if (f.publicIp !== ip || f.publicPort === null) return f;
  return port === f.publicPort
    ? { ...f, mapping: 'independent', mappingWhy: `seen by ${by} at the same port as by the hub` }
    : { ...f, mapping: 'dependent', mappingWhy: `seen by ${by} at port ${port}, by the hub at ${f.publicPort}: maps per destination` };
}

/** A direct attempt between x and y ended. A symmetric peer's packets get through only an independent filter. */
export function learnFromAttempt(x: NatFacts, y: NatFacts, succeeded: boolean): { x: NatFacts; y: NatFacts } {
  const learn = (self: NatFacts, other: NatFacts): NatFacts => {
    if (other.mapping !== 'dependent' || self.mapping === 'dependent') return self;
    return succeeded
      ? { ...self, filtering: 'independent', filteringWhy: 'accepted a symmetric peer on a direct path' }
      : { ...self, filtering: 'dependent', filteringWhy: 'a symmetric peer could not reach it directly' };
  };
  return { x: learn(x, y), y: learn(y, x) };
}

/** Why a direct path between x and y cannot work, or null if it may. */
export function hopeless(x: NatFacts, y: NatFacts, nameX: string, nameY: string): string | null {
  if (x.mapping === 'dependent' && y.mapping === 'dependent') return `both NATs map per destination (${nameX}: ${x.mappingWhy}; ${nameY}: ${y.mappingWhy})`;
  if (x.mapping === 'dependent' && y.filtering === 'dependent') return `${nameX} maps per destination and ${nameY} filters (${y.filteringWhy})`;
  if (y.mapping === 'dependent' && x.filtering === 'dependent') return `${nameY} maps per destination and ${nameX} filters (${x.filteringWhy})`;
  return null;
}

export interface Candidate {
  kind: 'lan' | 'public';
  /** Where x should send to reach y, and y to reach x. */
  forX: string;
  forY: string;
}

/**
 * Where to try a direct path, best first. Nodes behind the same public IP try their LAN
 * addresses first: that works with hairpin off, and is shorter with it on. LAN addresses are
 * only ever given to a node behind the same public IP (they are private).
 */
export function candidates(x: NatFacts, y: NatFacts): Candidate[] {
  const out: Candidate[] = [];
  if (x.publicIp !== null && x.publicIp === y.publicIp && x.lan.length && y.lan.length && x.listenPort && y.listenPort) {
    const [lx, ly] = bestLanPair(x.lan, y.lan);
    out.push({ kind: 'lan', forX: `${ly}:${y.listenPort}`, forY: `${lx}:${x.listenPort}` });
  }
  if (x.publicIp !== null && y.publicIp !== null && x.publicPort !== null && y.publicPort !== null) {
    out.push({ kind: 'public', forX: `${y.publicIp}:${y.publicPort}`, forY: `${x.publicIp}:${x.publicPort}` });
  }
  return out;
}

/** Prefer two addresses in one subnet; else the first of each. */
function bestLanPair(xs: string[], ys: string[]): [string, string] {
  for (const a of xs) for (const b of ys) if (sameSubnet(a, b)) return [a.split('/')[0], b.split('/')[0]];
  return [xs[0].split('/')[0], ys[0].split('/')[0]];
}

function sameSubnet(a: string, b: string): boolean {
  const net = parseCidr(a);
  const ip = parseIPv4(b.split('/')[0]);
  return net !== undefined && ip !== undefined && contains(net, ip);
}
