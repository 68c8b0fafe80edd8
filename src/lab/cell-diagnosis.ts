import type { PeerState } from '../core/wireguard/uapi.js';
import type { Lab } from './lab.js';
import type { Scenario } from './scenario.js';

/**
 * What a lab cell whose tunnel went silent looked like, in one text, taken at once after the
 * silence: each side's peer on its device (where it sends, when it last handshook, its counters),
 * the hub's view of the pair (the relay's counters and drops), and, for a relayed pair, the
 * relay host's nftables state and the routers' conntrack entries for the relay ports. A flake
 * that happens once in several runs must explain itself from one failure.
 */
export async function diagnoseCell(s: Scenario, lab: Lab, x: { name: string; host: string; ifname: string }, y: { name: string; host: string; ifname: string }): Promise<string> {
  const lines: string[] = [];
  const now = Date.now();
  const keys = new Map<string, string>();
  for (const n of [x, y]) keys.set(n.name, await s.publicKey(n.name).catch(() => ''));
  const peerOn = async (self: typeof x, other: typeof x): Promise<PeerState | undefined> =>
    (await (await s.device(self.ifname)).get().catch(() => ({ peers: [] as PeerState[] }))).peers.find((p) => p.publicKey === keys.get(other.name));
  const relayPorts = new Set<string>();
  for (const [self, other] of [
    [x, y],
    [y, x],
  ] as const) {
    const p = await peerOn(self, other);
    if (!p) {
      lines.push(`${self.name}: no peer ${other.name} on ${self.ifname}`);
      continue;
    }
    const age = p.lastHandshakeMs ? `${Math.round((now - p.lastHandshakeMs) / 1000)} s ago` : 'never';
    lines.push(`${self.name} -> ${other.name}: endpoint ${p.endpoint?.toString() ?? 'none'}, handshake ${age}, rx ${p.rxBytes} tx ${p.txBytes}, keepalive ${p.persistentKeepalive}, allowed ${p.allowedIps.length}`);
    if (p.endpoint && s.hubEndpoints().some((h) => h.address.equals(p.endpoint!.address))) relayPorts.add(String(p.endpoint.port));
  }
  const row = await s.pair(x.name, y.name).catch(() => undefined);
  if (row) lines.push(`hub: ${JSON.stringify({ mode: row.mode, confirmed: row.confirmed, relayId: row.relayId, reason: row.reason, relayed: row.relayed, history: row.history.slice(-4) })}`);
  if (relayPorts.size > 0) {
    const ports = [...relayPorts];
    const has = (line: string) => ports.some((port) => line.includes(port));
    const ruleset = await lab.exec(s.hubHost, 'nft', ['list', 'ruleset'], { allowFail: true });
    // The pair's map elements, then the counters of the chains they jump to ("c4ab" and so on).
    const rules = ruleset.stdout.split('\n').map((l) => l.trim());
    const elements = rules.filter(has);
    const chains = new Set(elements.flatMap((l) => [...l.matchAll(/jump (c\d+(?:ab|ba))/g)].map((m) => m[1])));
    const counters = rules.flatMap((l, i) => {
      const m = /^counter (c\d+(?:ab|ba)) \{$/.exec(l);
      return m && chains.has(m[1]) ? [`${m[1]}: ${rules[i + 1] ?? ''}`] : [];
    });
    lines.push(`relay host nft (${ports.join(', ')}):`, ...[...elements, ...counters].slice(0, 20).map((l) => `  ${l}`));
    // Every router on each side's way out: a carrier NAT is the home router's upstream.
    for (const n of [x, y]) {
      for (let router = lab.host(n.host).network; router !== 'internet'; router = lab.router(router).upstream) {
        const ct = await lab.exec(router, 'conntrack', ['-L', '-p', 'udp'], { allowFail: true });
        lines.push(`${router} conntrack toward the relay:`, ...ct.stdout.split('\n').filter(has).slice(0, 10).map((l) => `  ${l.trim()}`));
      }
    }
    const ct = await lab.exec(s.hubHost, 'conntrack', ['-L', '-p', 'udp'], { allowFail: true });
    lines.push('relay host conntrack:', ...ct.stdout.split('\n').filter(has).slice(0, 10).map((l) => `  ${l.trim()}`));
  }
  return lines.join('\n');
}
