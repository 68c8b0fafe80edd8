import { join } from 'node:path';
import type { Command } from 'commander';
import { adminGet } from '../core/admin-socket.js';
import { explainClientPath, explainPair, sideFromStatus } from '../core/doctor/explain-pair.js';
import { hubDoctorReportSchema, PROTOCOL_NAMES, type DoctorReport } from '../core/doctor/report.js';
import { hubStatusSchema } from '../core/status.js';
import { agentInterface, loadAgentConfig } from './node-config.js';
import { portArg } from './validate.js';
import { printable, progressPrinter, renderTable } from './table.js';

/**
 * `wgp2p doctor`: what this network allows, in plain words. On an agent (`--config`) it adds what
 * WireGuard and the hub know of the node and explains its pairs that are not direct; anywhere
 * else `--hub ADDRESS` is enough. On the hub (`--dir`) it explains every pair that is not direct.
 */

const collect = (v: string, prev: string[] = []) => [...prev, v];

function printReport(r: DoctorReport): void {
  console.log(r.node ? `doctor for ${r.node} (${r.tookMs} ms)` : `doctor (${r.tookMs} ms)`);
  for (const line of r.summary) console.log(`  ${printable(line)}`);
  console.log('');
  console.log(renderTable(['WITH', 'PATH', 'WHY'], r.outlook.map((o) => [o.peer, o.path, o.why])));
  if (r.portMapping.length) {
    console.log('');
    console.log(renderTable(['PORT MAPPING', 'ANSWERS', 'FORWARDS', 'DETAIL'], r.portMapping.map((m) => [PROTOCOL_NAMES[m.protocol], m.answered ? 'yes' : 'no', m.forwards === null ? '-' : m.forwards ? 'yes' : 'no', m.detail])));
  }
  if (r.pairs.length) {
    console.log('');
    for (const p of r.pairs) console.log(printable(p.explanation));
  }
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('what this network allows (UDP, NAT mapping and filtering, hairpin, leaky routers, port mapping, IPv6) and what that means for each kind of peer')
    .option('--config <file>', 'on an agent: NAME.agent.json (adds what WireGuard and the hub know of this node)')
    .option('--interface <if>', 'agent interface (default: NAME)')
    .option('--hub <address>', "the hub's address or DNS name, optionally with the STUN port (default on an agent: its hub endpoints); give it twice for IPv4 and IPv6", collect)
    .option('--stun-port <port>', "the hub's STUN port (hub run --stun-port)", portArg, 3478)
    .option('--dir <dir>', 'on the hub: explain every pair that is not direct, from what the hub knows')
    .option('--no-port-mapping', 'do not ask the router for a test port mapping')
    .option('--json', 'print JSON')
    .action(async (o: { config?: string; interface?: string; hub?: string[]; stunPort: number; dir?: string; portMapping: boolean; json?: boolean }) => {
      if (o.dir) {
        const s = hubStatusSchema.parse(await adminGet<unknown>(join(o.dir, 'hub.sock'), '/v1/status'));
        const byName = new Map(s.nodes.map((n) => [n.name, n]));
        const agentPairs = s.pairs.filter((p) => p.mode !== 'direct').map((p) => ({ pair: `${p.a} <-> ${p.b}`, path: p.mode, explanation: explainPair(p, sideFromStatus(p.a, byName.get(p.a)?.nat), sideFromStatus(p.b, byName.get(p.b)?.nat)) }));
        // Plain clients: each agent reports its path to them; the ones that do not work, with the agent's router.
        const clientPaths = s.nodes
          .filter((n) => n.kind === 'client')
          .flatMap((n) => (n.paths ?? []).filter((p) => p.path === 'impossible').map((p) => ({ pair: `${n.name} <-> ${p.agent}`, path: p.path, explanation: explainClientPath(n.name, sideFromStatus(p.agent, byName.get(p.agent)?.nat), p) })));
        const report = hubDoctorReportSchema.parse({ total: s.pairs.length + s.nodes.reduce((k, n) => k + (n.kind === 'client' ? (n.paths?.length ?? 0) : 0), 0), pairs: [...agentPairs, ...clientPaths] });
        if (o.json) return console.log(JSON.stringify(report, null, 2));
        if (!report.pairs.length) console.log(`every pair is direct (${report.total} pairs)`);
        for (const p of report.pairs) console.log(printable(p.explanation));
        return;
      }
      const { runDoctor } = await import('../agent/doctor/gather.js');
      const { stunServers } = await import('../agent/doctor/stun-servers.js');
      const cfg = o.config ? loadAgentConfig(o.config) : undefined;
      const hubs = o.hub ?? cfg?.hubEndpoints ?? [];
      if (hubs.length === 0) throw new Error(cfg ? `${o.config} names no hub endpoints (an older file): give --hub ADDRESS` : 'say where the hub is: --hub ADDRESS (or --config NAME.agent.json on an agent, --dir DIR on the hub)');
      const stun = await stunServers(hubs.map((h) => (cfg && !o.hub ? h.replace(/:\d+$/, '') : h)), o.stunPort);
      const report = await runDoctor({
        stun,
        agent: cfg && o.config ? { config: cfg, ifname: agentInterface(cfg, o.config, o.interface) } : undefined,
        portMapping: o.portMapping,
        onProgress: o.json ? undefined : progressPrinter('doctor'),
      });
      if (o.json) console.log(JSON.stringify(report, null, 2));
      else printReport(report);
      // The UPnP client can leave sockets and timers behind after an aborted search: doctor is done, so it ends here.
      process.exit(0);
    });
}
