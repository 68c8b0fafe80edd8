import { join } from 'node:path';
import type { Command } from 'commander';
import { agentSocketPath } from '../agent/socket-path.js';
import { KINDS, type KindId } from '../core/candidates/index.js';
import { adminGet } from '../core/admin-socket.js';
import { hubTransportText } from '../core/hub-transport-text.js';
import { agentStatusSchema, hubStatusSchema, type HubStatusJson, type NodeStatusJson, type PortMapperStatusJson, type StoreHealthJson } from '../core/status.js';
import { agentInterface, loadAgentConfig } from './node-config.js';
import { renderTable } from './table.js';

export function age(ms: number | null): string {
  if (ms === null) return 'never';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** How the candidate kinds are called in tables. */
const CANDIDATE_NAMES = Object.fromEntries(KINDS.map((k) => [k.id, k.name])) as Record<KindId, string>;

const bytes = (n: number) => (n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`);

export function hubPathText(n: NodeStatusJson): string {
  if (n.kind === 'agent' && !n.connected) return 'agent not connected';
  if (n.kind === 'agent' && !n.paths?.length) return 'agent connected';
  if (n.kind === 'relay') return n.handshakeAgeMs === null ? 'never connected' : 'relay';
  if (n.handshakeAgeMs === null) return 'never connected';
  if (!n.paths?.length) return 'no agent reports yet';
  return n.paths
    .map((p) =>
      p.path === 'direct'
        ? `direct to ${p.agent}${p.directAfterMs !== null ? ` (in ${p.directAfterMs} ms)` : ''}`
        : p.path === 'relayed'
          ? `relayed to ${p.agent}`
        : p.path === 'impossible'
          ? `${p.agent}: ${p.reason}`
          : `${p.agent}: ${p.path}`,
    )
    .join('; ');
}

function natText(n: NodeStatusJson): string {
  if (!n.nat) return '-';
  const m = n.nat.mapping === 'dependent' ? 'symmetric' : n.nat.mapping === 'independent' ? 'cone' : '?';
  const f = n.nat.filtering === 'dependent' ? ', filters' : n.nat.filtering === 'independent' ? ', open' : '';
  // A router that takes unsolicited WAN input: its node has to send first (hub/pairs/initiator.ts).
  const l = n.nat.leaky === 'yes' ? ', leaky' : '';
  const pm = n.nat.portMapping;
  return `${m}${f}${l}${pm ? `, maps ${pm.external} (${PROTOCOL_NAMES[pm.protocol]}${pm.problem ? `, not used: ${pm.problem}` : pm.usable === false ? ', not used' : ''})` : ''}`;
}

const PROTOCOL_NAMES = { pcp: 'PCP', natpmp: 'NAT-PMP', upnp: 'UPnP' } as const;

/** The agent's port mapping in one line: what, by which protocol, until when; or why none. */
export function portMappingText(p: PortMapperStatusJson | undefined): string {
  if (!p) return 'port mapping: not reported by this agent';
  if (p.state === 'off') return 'port mapping: off (--no-port-mapping)';
  if (p.mapping) return `port mapping: ${p.mapping.external} -> WireGuard's port, by ${PROTOCOL_NAMES[p.mapping.protocol]}${p.gateway ? ` on ${p.gateway}` : ''}, for ${age(p.mapping.expiresInMs)} more (renewed at half-life)`;
  if (p.state === 'requesting' || p.state === 'idle') return 'port mapping: asking the router';
  return `port mapping: none${p.problem ? ` (${p.problem})` : ''}${p.nextTryInMs !== null ? `; next try in ${age(p.nextTryInMs)}` : ''}`;
}

/** Nodes that reach the hub over its TLS stream, one line each; nothing when none does. */
export function streamNodesText(nodes: readonly NodeStatusJson[]): string[] {
  return nodes.filter((n) => n.transport?.transport === 'tcp/tls').map((n) => `${n.name}: on the TLS stream${n.transport?.reason ? ` (${n.transport.reason})` : ''}`);
}

/** One line while the hub's store writes fail; nothing while they work. */
export function storeText(s: StoreHealthJson | undefined): string | undefined {
  if (!s || s.state === 'ok') return undefined;
  const since = s.failingForMs === null ? '' : ` for ${age(s.failingForMs)}`;
  return `store: degraded${since} (${s.pendingWrites} writes pending, last error: ${s.lastError ?? 'unknown'}); the hub goes on and retries`;
}

function pairRow(p: HubStatusJson['pairs'][number]): string[] {
  const overStream = p.mode === 'relay' && p.streamSides?.length ? ` over TCP/TLS for ${p.streamSides.join(' and ')}` : '';
  const path =
    p.mode === 'relay' ? `relay${overStream}${p.relay ? ` on ${p.relay}` : ''}${p.confirmed ? '' : ' (starting)'}${p.bridged ? ' bridging IPv4 and IPv6' : p.family === 6 ? ' over IPv6' : ''}` : p.mode === 'direct' ? `direct (${CANDIDATE_NAMES[p.candidate ?? 'public4']})` : p.mode === 'hub' ? 'via hub (proxied)' : p.mode;
  const relayed = p.relayed ? `${bytes(p.relayed.aToB.bytes + p.relayed.bToA.bytes)} (${p.relayed.relay})` : '-';
  return [`${p.a} <-> ${p.b}`, path + (p.attempting ? ', trying direct' : ''), age(p.sinceMs), p.firstPathMs === null ? '-' : `${p.firstPathMs} ms`, relayed, p.nextRetryInMs === null ? '-' : age(p.nextRetryInMs), p.reason ?? ''];
}

export { hubTransportText };

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('on the hub (--dir): every node with endpoint, handshake age, transfer and path; on an agent (--config): every peer with its path')
    .option('--dir <dir>', 'hub directory (the hub must be running)')
    .option('--config <file>', 'agent config NAME.agent.json (the agent must be running)')
    .option('--interface <if>', 'agent interface (default: NAME)')
    .option('--json', 'print JSON')
    .action(async (o: { dir?: string; config?: string; interface?: string; json?: boolean }) => {
      if (o.dir) {
        const s = hubStatusSchema.parse(await adminGet<unknown>(join(o.dir, 'hub.sock'), '/v1/status'));
        if (o.json) return console.log(JSON.stringify(s, null, 2));
        console.log(
          renderTable(
            ['NODE', 'KIND', 'ADDRESSES', 'ENDPOINT', 'HANDSHAKE', 'RX', 'TX', 'NAT', 'PATH'],
            s.nodes.map((n) => [n.name, n.kind, `${n.address} ${n.address6}`, n.transport?.transport === 'tcp/tls' ? `tcp/tls (${n.endpoint ?? '-'})` : (n.endpoint ?? '-'), age(n.handshakeAgeMs), bytes(n.rxBytes), bytes(n.txBytes), natText(n), hubPathText(n)]),
          ),
        );
        if (s.pairs.length) {
          console.log('');
          console.log(renderTable(['PAIR', 'PATH', 'SINCE', 'FIRST PATH', 'RELAYED', 'NEXT TRY', 'WHY'], s.pairs.map(pairRow)));
        }
        if (s.relays.length) {
          console.log('');
          console.log(renderTable(['RELAY', 'ADDRESS', 'ALLOCATIONS', 'STREAM SIDE'], s.relays.map((r) => [r.name, r.address, String(r.allocations), r.stream ?? 'none'])));
        }
        const streamed = streamNodesText(s.nodes);
        if (streamed.length) console.log(`\n${streamed.join('\n')}`);
        const store = storeText(s.hub.store);
        if (store) console.log(`\n${store}`);
        if (!s.hub.groupsEnforced) console.log('\nwarning: the hub cannot use nftables: groups are not enforced for traffic it forwards');
      } else if (o.config) {
        const cfg = loadAgentConfig(o.config);
        const raw = await adminGet<unknown>(agentSocketPath(agentInterface(cfg, o.config, o.interface)), '/v1/status');
        const s = agentStatusSchema.parse(raw);
        if (o.json) return console.log(JSON.stringify(raw, null, 2));
        console.log(`agent ${s.name}: hub ${s.hubConnected ? 'connected' : 'NOT connected (tunnels already up keep working)'}`);
        console.log(hubTransportText(s.hubTransport));
        console.log(portMappingText(s.portMapping));
        console.log(
          renderTable(
            ['PEER', 'PATH', 'ENDPOINT', 'HANDSHAKE', 'RX', 'TX', 'NOTE'],
            s.peers.map((p) => [p.name ?? p.publicKey.slice(0, 8), p.path + (p.kind ? ` (${CANDIDATE_NAMES[p.kind]})` : '') + (p.relay && p.path.startsWith('relay') ? ` by ${p.relay}` : ''), p.endpoint?.toString() ?? '-', age(p.handshakeAgeMs), bytes(p.rxBytes), bytes(p.txBytes), p.reason ?? (p.directAfterMs !== null ? `direct in ${p.directAfterMs} ms` : '')]),
          ),
        );
      } else throw new Error('say where: --dir DIR on the hub, or --config NAME.agent.json on an agent');
    });
}
