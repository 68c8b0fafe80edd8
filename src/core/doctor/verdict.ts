import type { FamilyFacts, PeerOutlook, PortMappingFact } from './report.js';
import { PROTOCOL_NAMES } from './report.js';

/**
 * What the measured facts mean, in words: the summary lines and, for each kind of peer, the path
 * a pair would get. Pure, so every sentence is unit-tested. The rule is core/nat.ts's punch rule
 * (RFC 4787 terms) with two refinements doctor can measure: an address-dependent filter lets a
 * symmetric peer in (its packets come from the address we sent to, only the port is new), and a
 * port mapping that forwards makes this side reachable like a full cone.
 */

/** A side of a pair as the rule needs it. */
export interface Side {
  /** Maps per destination (symmetric). */
  dependent: boolean;
  /** Filters by address and port: a symmetric peer's unpredictable port is not let in. */
  portFilter: boolean;
}

export function punchWorks(x: Side, y: Side): boolean {
  if (x.dependent && y.dependent) return false;
  if (x.dependent && y.portFilter) return false;
  if (y.dependent && x.portFilter) return false;
  return true;
}

/** The kinds of peer users meet, as sides of a pair. */
const PEERS: { peer: string; side: Side }[] = [
  { peer: 'public hosts and full-cone NATs', side: { dependent: false, portFilter: false } },
  { peer: 'home routers', side: { dependent: false, portFilter: true } },
  { peer: 'symmetric NATs (many mobile carriers)', side: { dependent: true, portFilter: true } },
  { peer: 'symmetric NATs whose router maps a port', side: { dependent: false, portFilter: false } },
];

/** Why a pair of this side with a peer gets its path, in a sentence. */
function reason(me: Side, peer: Side, ok: boolean, mapped: PortMappingFact | undefined, anyAnswers: boolean): string {
  if (ok && mapped && peer.dependent) return `this router's ${PROTOCOL_NAMES[mapped.protocol]} mapping lets their packets in from any port`;
  if (ok && me.dependent) return 'this NAT maps per destination, but they let anyone in';
  if (ok && peer.dependent) return 'their NAT maps per destination, but this side lets them in';
  if (ok) return 'both NATs keep one port per socket, so each side can be told where to send';
  if (me.dependent && peer.dependent) return 'both NATs map per destination: neither side can be told the port to send to; direct if a router maps a port (UPnP, NAT-PMP, PCP)';
  if (me.dependent) return 'this NAT maps per destination and their routers filter by address and port; direct if this router maps a port (UPnP, NAT-PMP, PCP)';
  return `their NAT maps per destination, and this router filters by address and port${anyAnswers ? '' : ' and offers no port mapping'}`;
}

export function forwardingMapping(pm: readonly PortMappingFact[]): PortMappingFact | undefined {
  return pm.find((m) => m.forwards === true);
}

/** This side, from IPv4 facts and port mapping; undefined when the mapping could not be measured. */
export function sideOf(v4: FamilyFacts, pm: readonly PortMappingFact[]): Side | undefined {
  if (forwardingMapping(pm)) return { dependent: false, portFilter: false };
  if (!v4.udp || v4.mapping === null) return undefined;
  return { dependent: v4.mapping === 'dependent', portFilter: v4.filtering === 'address+port' };
}

export function outlook(v4: FamilyFacts, v6: FamilyFacts, pm: readonly PortMappingFact[]): PeerOutlook[] {
  const out: PeerOutlook[] = [];
  if (!v4.udp && !v6.udp) return [{ peer: 'every peer', path: 'not connected', why: 'no UDP reaches the hub, and WireGuard is UDP (there is no TCP fallback yet)' }];
  const me = sideOf(v4, pm);
  const mapped = forwardingMapping(pm);
  if (v4.udp && me) {
    for (const p of PEERS) {
      const ok = punchWorks(me, p.side);
      let why = reason(me, p.side, ok, mapped, pm.some((m) => m.answered));
      if (ok && v4.leaky && p.side.portFilter && !mapped) why += '; this router takes a port when the peer\'s packet arrives first, so this side has to send first';
      out.push({ peer: `${p.peer} (IPv4)`, path: ok ? 'direct' : 'relay', why });
    }
  }
  if (v6.udp) {
    const open = v6.unsolicited === true;
    out.push({ peer: 'peers with IPv6', path: 'direct', why: open ? 'no NAT and no firewall on IPv6: anyone can reach this machine' : 'no NAT on IPv6; the stateful firewalls on both sides open for each other when both send at once' });
  } else out.push({ peer: 'peers with IPv6', path: v4.udp ? 'direct' : 'relay', why: v4.udp ? 'over IPv4 as above (no IPv6 here); an IPv6-only peer is bridged by the relay' : 'no IPv4 here: an IPv4-only peer is bridged by the relay' });
  return out;
}

const yes = (b: boolean | null, y: string, n: string, unknown = 'not measured') => (b === null ? unknown : b ? y : n);

function familyLines(f: FamilyFacts): string[] {
  const v = `IPv${f.family}`;
  if (!f.udp) return [`${v}: no UDP to the hub${f.notes.length ? ` (${f.notes[0]})` : ''}`];
  const lines = [`${v}: UDP to the hub works; the hub sees this machine at ${f.mapped}`];
  if (f.addressKept) lines.push(`${v}: no NAT (the hub sees this machine's own address)`);
  else {
    lines.push(
      `${v} mapping: ${f.mapping === null ? 'not measured' : f.mapping === 'independent' ? `endpoint-independent (the hub's two ports saw the same ${f.mapped})` : `per destination, a symmetric NAT (${f.mapped} toward one port of the hub, ${f.mappedOther} toward the other)`}`,
      `${v} port preserved: ${yes(f.portPreserved, 'yes', 'no')}`,
      `${v} hairpin: ${yes(f.hairpin, 'yes (this machine reached its own public address through the router)', 'no')}`,
      `${v} leaky: ${yes(f.leaky, 'yes: the router takes a port when a packet from outside reaches it first; the side behind it must send first', 'no', f.portAfterProbe === false ? 'the port changed after a probe, but this NAT changes ports anyway' : 'not measured')}`,
    );
  }
  const filt = f.filtering === null ? 'not measured' : f.filtering === 'independent' ? 'none: anyone can send in, even to a port nothing sent from' : f.filtering === 'address' ? 'by address (another port of the hub got in; another address was not tried)' : 'by address and port (only what this machine sent to gets in)';
  lines.push(`${v} filtering: ${filt}`);
  if (f.family === 6) lines.push(`IPv6 firewall: ${f.unsolicited === null ? 'not measured' : f.unsolicited ? 'open (unsolicited packets get in)' : 'stateful (only replies get in)'}`);
  return lines;
}

export function summary(v4: FamilyFacts, v6: FamilyFacts, pm: readonly PortMappingFact[]): string[] {
  const lines = [...familyLines(v4)];
  if (v6.server === null && !v6.udp) lines.push('IPv6: not tried (the hub has no IPv6 address)');
  else if (!v6.udp && v6.notes.some((n) => n.startsWith('this machine has no'))) lines.push('IPv6: none on this machine');
  else lines.push(...familyLines(v6));
  const answering = pm.filter((m) => m.answered);
  if (answering.length === 0) lines.push('Port mapping: no protocol answers (UPnP-IGD, NAT-PMP, PCP)');
  for (const m of answering) lines.push(`Port mapping: ${PROTOCOL_NAMES[m.protocol]} answers${m.externalAddress ? ` (external address ${m.externalAddress})` : ''}${m.forwards === null ? '' : m.forwards ? ' and a test mapping forwards' : ', but a test mapping does not forward'}`);
  return lines;
}
