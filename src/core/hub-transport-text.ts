import type { HubTransportJson } from './status.js';

const ageText = (ms: number) => (ms < 1000 ? `${ms} ms` : ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`);

/**
 * How the agent reaches its hub, in one line: `hub: udp (…)`, or `hub: tcp/tls HOST:443 (no UDP
 * handshake within 2 s; probing UDP every 4 s, next in 2 s)` and the stream's state when not up.
 */
export function hubTransportText(t: HubTransportJson | undefined): string {
  if (!t) return 'hub transport: not reported by this agent';
  if (t.transport === 'udp') {
    const note = t.state === 'returning' ? '; back from the TLS stream, waiting for a handshake over UDP' : '';
    const relays = t.allocations > 0 ? `; ${t.allocations} relay side${t.allocations === 1 ? '' : 's'} still on the TLS stream` : '';
    return `hub: udp (${t.reason}${note}${relays})`;
  }
  const probe = t.probeEveryMs !== undefined ? `; probing UDP every ${ageText(t.probeEveryMs)}${t.nextProbeInMs !== null ? `, next in ${ageText(t.nextProbeInMs)}` : ''}` : '';
  const stream = t.stream && t.stream !== 'up' ? `; stream ${t.stream}` : t.state === 'trying-stream' ? '; no handshake over it yet' : '';
  return `hub: tcp/tls ${t.relay ?? '?'} (${t.reason}${probe}${stream})`;
}
