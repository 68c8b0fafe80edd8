import { Endpoint } from '../../core/net/endpoint.js';
import type { AgentConfig } from '../../core/protocol.js';
import type { NodeStatusJson } from '../../core/status.js';
import { explainPair, sideFromStatus, type PairSide } from '../../core/doctor/explain-pair.js';
import { doctorReportSchema, type DoctorReport, type FamilyFacts, type HubView, type PortMappingFact } from '../../core/doctor/report.js';
import { outlook, summary } from '../../core/doctor/verdict.js';
import { defaultGateway4 } from './gateway.js';
import { fetchHubView, hubTunnelAddress, wireguardMapping, wireguardSelf } from './hub-view.js';
import { emptyFacts, probeFamily } from './nat-probe.js';
import { defaultMappers, probePortMapping, type PortMapper } from './port-mapping.js';
import { localAddressToward } from './route.js';

/**
 * `wgp2p doctor`: every probe in order, then what they mean. Works on any machine that can reach
 * the hub's STUN port; on an agent it adds what WireGuard and the hub know of this node.
 */

/** WireGuard re-handshakes every 2 minutes while packets flow; an older handshake says nothing about now. */
const WIREGUARD_ALIVE_MS = 180_000;

export interface DoctorOptions {
  stun: { 4: Endpoint | null; 6: Endpoint | null };
  agent?: { config: AgentConfig; ifname: string };
  /** false: do not ask the router for port mappings (`--no-port-mapping`). */
  portMapping?: boolean;
  /** Stand-ins for the port-mapping clients (tests, or the agent's own). */
  mappers?: PortMapper[];
  onProgress?: (message: string, done: number, total: number) => void;
}

export async function runDoctor(o: DoctorOptions): Promise<DoctorReport> {
  const start = Date.now();
  const total = 4;
  let done = 0;
  const step = (what: string) => o.onProgress?.(what, done, total);
  const phase = (what: string) => o.onProgress?.(what, ++done, total);

  const [ipv4, ipv6] = await Promise.all([
    o.stun[4] ? probeFamily(o.stun[4], step) : Promise.resolve(emptyFacts(4, null, 'the hub has no IPv4 address')),
    o.stun[6] ? probeFamily(o.stun[6], step) : Promise.resolve(emptyFacts(6, null, 'the hub has no IPv6 address')),
  ]);
  phase('NAT and firewall probed');

  let portMapping: PortMappingFact[] = [];
  if (o.portMapping !== false && ipv4.udp && !ipv4.addressKept) {
    const gw = await defaultGateway4();
    const lan = gw ? await localAddressToward(gw) : null;
    portMapping = await probePortMapping(o.mappers ?? defaultMappers(gw, lan), o.stun[4], step);
  }
  phase(o.portMapping === false ? 'port mapping not asked (--no-port-mapping)' : 'port mapping probed');

  let hub: HubView | null = null;
  let wireguard: DoctorReport['wireguard'] = null;
  const notes: string[] = [];
  if (o.agent) {
    step('asking the hub what it knows of this node');
    const [v, wg] = await Promise.all([fetchHubView(o.agent.config), wireguardSelf(o.agent.ifname, hubTunnelAddress(o.agent.config))]);
    if ('view' in v) hub = v.view;
    else notes.push(v.error);
    if ('error' in wg) notes.push(wg.error);
    else {
      const hubSeen = hub?.node.endpoint ?? null;
      const relaySeen = hub?.relaySeen ?? null;
      const seenPort = Endpoint.tryParse(hubSeen)?.port ?? null;
      wireguard = {
        interface: o.agent.ifname,
        listenPort: wg.listenPort,
        hubHandshakeAgeMs: wg.hubHandshakeAgeMs,
        hubSeen,
        relaySeen,
        mapping: wireguardMapping(hubSeen, relaySeen),
        portPreserved: seenPort === null || wg.listenPort === null ? null : seenPort === wg.listenPort,
      };
    }
  }
  phase('hub asked');

  const lines = summary(ipv4, ipv6, portMapping);
  if (wireguard) lines.push(...wireguardLines(wireguard));
  if (hub?.node.nat) lines.push(`The hub's knowledge of this NAT: mapping ${hub.node.nat.mapping} (${hub.node.nat.mappingWhy}); filtering ${hub.node.nat.filtering} (${hub.node.nat.filteringWhy})`);
  lines.push(...notes);
  const pairs = hub ? explainPairs(hub, ipv4, portMapping) : [];
  let peers = outlook(ipv4, ipv6, portMapping);
  // WireGuard gets through where STUN does not: the hub runs --no-stun, or a firewall in front of it passes only WireGuard's port.
  if (!ipv4.udp && !ipv6.udp && wireguard?.hubHandshakeAgeMs !== null && wireguard?.hubHandshakeAgeMs !== undefined && wireguard.hubHandshakeAgeMs < WIREGUARD_ALIVE_MS) {
    lines.push(`WireGuard reaches the hub, but the hub's STUN port (${o.stun[4] ?? o.stun[6]}) does not answer: the hub runs with --no-stun, or a firewall in front of it passes only WireGuard; doctor could measure nothing else`);
    peers = [{ peer: 'every peer', path: 'unknown', why: 'nothing about this NAT could be measured without the hub\'s STUN port' }];
  }
  phase('done');
  return doctorReportSchema.parse({ node: o.agent?.config.name ?? null, ipv4, ipv6, portMapping, wireguard, hub, summary: lines, outlook: peers, pairs, tookMs: Date.now() - start });
}

function wireguardLines(w: NonNullable<DoctorReport['wireguard']>): string[] {
  const out = [`WireGuard (${w.interface}, port ${w.listenPort ?? '?'}): ${w.hubHandshakeAgeMs === null ? 'no handshake with the hub yet' : `last handshake with the hub ${Math.round(w.hubHandshakeAgeMs / 1000)} s ago`}`];
  if (w.hubSeen) out.push(`WireGuard's port as the hub sees it: ${w.hubSeen}${w.portPreserved === null ? '' : w.portPreserved ? ' (port kept)' : ' (port changed by the NAT)'}`);
  if (w.relaySeen) out.push(`WireGuard's port as the relay sees it: ${w.relaySeen}${w.mapping === null ? '' : w.mapping === 'independent' ? ': the same mapping toward two destinations' : ': another port toward the relay, so this NAT maps per destination'}`);
  return out;
}

/** The pairs that are not direct, each in words; this node's side adds what doctor measured here. */
function explainPairs(h: HubView, v4: FamilyFacts, pm: readonly PortMappingFact[]) {
  const self: PairSide = { name: h.node.name, nat: h.node.nat, portMapping: pm.length ? (pm.find((m) => m.forwards !== false && m.answered)?.protocol ?? null) : undefined, leaky: v4.leaky === true };
  const peer = (n: Omit<NodeStatusJson, 'endpoint'> | undefined, name: string): PairSide => sideFromStatus(name, n?.nat);
  return h.pairs
    .filter((p) => p.mode !== 'direct')
    .map((p) => {
      const other = p.a === h.node.name ? p.b : p.a;
      const o = peer(h.peers.find((n) => n.name === other), other);
      const [a, b] = p.a === h.node.name ? [self, o] : [o, self];
      return { pair: `${p.a} <-> ${p.b}`, path: p.mode, explanation: explainPair(p, a, b) };
    });
}
