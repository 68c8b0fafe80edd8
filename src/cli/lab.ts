import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { knownLabs, Lab, teardownOnExit } from '../lab/lab.js';
import { namespaceExists } from '../lab/netns.js';
import { preflight } from '../lab/preflight.js';
import { loadTopology } from '../lab/topology.js';
import type { Behaviour } from '../lab/truth-table.js';
import { verifyProfiles, type VerifyResult } from '../lab/verify.js';
import { runDemo, type DemoRow } from '../lab/demo.js';
import { renderFamilyMatrix, renderMatrix, runFamilyMatrix, runMatrix } from '../lab/nat-matrix.js';
import { VmError } from '../lab/vm/failure.js';
import { runInVm } from '../lab/vm/run.js';
import { runInVmParallel } from '../lab/vm/parallel.js';
import { KERNEL_META_PACKAGE } from '../lab/vm/config.js';
import { parseVmOptions, type VmCliOptions } from '../lab/vm/options.js';
import { age } from './status.js';
import { progressPrinter, renderTable } from './table.js';

interface StatusRow {
  lab: string;
  node: string;
  kind: 'router' | 'host';
  network: string;
  address: string;
  public: string;
  profile: string;
  wireguard: string[];
  up: boolean;
}

async function statusRows(lab: Lab): Promise<StatusRow[]> {
  const rows: StatusRow[] = [];
  for (const r of lab.plan.routers) {
    const flags = [r.hairpin ? 'hairpin' : '', r.upnp ? 'upnp' : '', r.ipv6 ? `ipv6 ${r.ipv6.firewall}` : ''].filter(Boolean);
    rows.push({
      lab: lab.name,
      node: r.name,
      kind: 'router',
      network: r.upstream,
      address: `${r.wan.join(', ')} / lan ${r.lan.subnets.map((x) => x.subnet).join(', ')}`,
      public: lab.publicAddresses(r.name).join(', '),
      profile: (r.carrierOf ? `carrier NAT of ${r.carrierOf}` : r.profile) + (flags.length ? ` +${flags.join(' +')}` : ''),
      wireguard: [],
      up: namespaceExists(lab.ns(r.name)),
    });
  }
  for (const h of lab.plan.hosts) {
    rows.push({
      lab: lab.name,
      node: h.name,
      kind: 'host',
      network: h.network,
      address: h.addresses.join(', '),
      public: lab.publicAddresses(h.name).join(', ') || '-',
      profile: (h.network === 'internet' ? 'public' : lab.router(h.network).profile) + (h.addresses.every((a) => a.family === 6) ? ' (IPv6-only)' : ''),
      wireguard: lab.wireguardInterfaces.filter((w) => w.host === h.name).map((w) => w.interface),
      up: namespaceExists(lab.ns(h.name)),
    });
  }
  return rows;
}

function printStatus(rows: StatusRow[]): void {
  console.log(
    renderTable(
      ['LAB', 'NODE', 'KIND', 'NETWORK', 'ADDRESS', 'PUBLIC', 'PROFILE', 'WIREGUARD', 'STATE'],
      rows.map((r) => [r.lab, r.node, r.kind, r.network, r.address, r.public, r.profile, r.wireguard.join(',') || '-', r.up ? 'up' : 'MISSING']),
    ),
  );
}

/** The lab a command acts on: the one named, or the only one up. */
async function pickLab(name: string | undefined): Promise<Lab> {
  if (name) return Lab.open(name);
  const labs = await Lab.list();
  if (labs.length === 1) return Lab.open(labs[0]);
  throw new Error(labs.length === 0 ? 'no lab is up; start one with "wgp2p lab up <topology>"' : `several labs are up (${labs.join(', ')}); name one with --lab`);
}

const fmt = (v: Behaviour[keyof Behaviour]) => (v === null ? '-' : v === true ? 'yes' : v === false ? 'no' : v);

/** Columns of each family's table: IPv6 has no NAT, so hairpin, port survival and port mapping do not apply there. */
const VERIFY_COLUMNS: Record<4 | 6, [keyof Behaviour, string][]> = {
  4: [['udp', 'UDP'], ['tcp', 'TCP'], ['mapping', 'MAPPING'], ['portPreserved', 'PORT KEPT'], ['addressKept', 'ADDRESS KEPT'], ['filtering', 'FILTERING'], ['unsolicited', 'UNSOLICITED IN'], ['hairpin', 'HAIRPIN'], ['portSurvivesProbe', 'PORT AFTER WAN PROBE'], ['upnp', 'UPNP'], ['natpmp', 'NAT-PMP'], ['pcp', 'PCP']],
  6: [['udp', 'UDP'], ['tcp', 'TCP'], ['mapping', 'MAPPING'], ['portPreserved', 'PORT KEPT'], ['addressKept', 'ADDRESS KEPT'], ['filtering', 'FILTERING'], ['unsolicited', 'UNSOLICITED IN'], ['punch', 'HOLE PUNCH']],
};

export function printVerify(results: VerifyResult[]): void {
  const tables = ([4, 6] as const).filter((f) => results.some((r) => r.family === f));
  tables.forEach((family, i) => {
    const cols = VERIFY_COLUMNS[family];
    const rows = results.filter((r) => r.family === family);
    // A mismatch in a column this table leaves out still shows, in AS NAMED.
    const hidden = (r: VerifyResult) => r.mismatches.filter((m) => !cols.some(([c]) => c === m));
    if (i > 0) console.log('');
    console.log(
      renderTable(
        [family === 4 ? 'IPv4 PROFILE' : 'IPv6 ROUTER', ...cols.map(([, h]) => h), 'AS NAMED'],
        rows.map((r) => [
          r.profile,
          ...cols.map(([c]) => (r.mismatches.includes(c) ? `${fmt(r.measured[c])} (want ${fmt(r.expected[c])})` : fmt(r.measured[c]))),
          r.mismatches.length ? `NO${hidden(r).length ? ` (${hidden(r).join(', ')})` : ''}` : 'yes',
        ]),
      ),
    );
  });
}

/** Ctrl-C in a guest is the command's own end (exit 130), not a crash: every other error goes on up. */
function exitIfInterrupted(err: unknown): never {
  if (!(err instanceof VmError) || err.kind !== 'interrupted') throw err;
  console.error(`wgp2p: ${err.message}`);
  process.exit(err.exitCode);
}

export function registerLab(program: Command): void {
  const lab = program.command('lab').description('a virtual internet of namespaces with real NATs and real WireGuard');

  lab
    .command('up')
    .description('build a lab from a topology file (YAML or JSON; IPv4, and IPv6 where it asks: topologies/dualstack.yaml)')
    .argument('<topology>', 'topology file, e.g. topologies/seed000.yaml')
    .option('--json', 'print the status as JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      const plan = await loadTopology(file);
      teardownOnExit();
      const l = await Lab.up(plan, { topologyFile: resolve(file), onProgress: progressPrinter(`lab ${plan.name}`) });
      const rows = await statusRows(l);
      if (opts.json) console.log(JSON.stringify(rows, null, 2));
      else {
        printStatus(rows);
        console.log(`\nlab "${l.name}" is up. Run commands in it with: wgp2p lab exec <node> -- <cmd>; remove it with: wgp2p lab down ${l.name}`);
      }
      // The lab is meant to outlive this command: keep its namespaces when we exit normally.
      process.exit(0);
    });

  lab
    .command('status')
    .description('hosts, addresses of both families, NAT profiles and IPv6 firewalls, WireGuard interfaces of the labs that are up')
    .argument('[lab]', 'only this lab')
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, opts: { json?: boolean }) => {
      const names = name ? [name] : await Lab.list();
      const rows = (await Promise.all(names.map(async (n) => statusRows(await Lab.open(n))))).flat();
      if (opts.json) console.log(JSON.stringify(rows, null, 2));
      else if (rows.length === 0) console.log('no lab is up');
      else printStatus(rows);
    });

  lab
    .command('exec')
    .description('run a command inside a node of a lab')
    .argument('<node>', 'host or router name')
    .argument('<cmd...>', 'command and arguments (put them after --)')
    .option('--lab <name>', 'lab name (default: the only lab that is up)')
    .action(async (node: string, cmd: string[], opts: { lab?: string }) => {
      preflight(['ip']);
      const l = await pickLab(opts.lab);
      if (!namespaceExists(l.ns(node))) throw new Error(`lab "${l.name}" has no node "${node}"`);
      const r = spawnSync('ip', ['netns', 'exec', l.ns(node), ...cmd], { stdio: 'inherit' });
      process.exitCode = r.status ?? 1;
    });

  lab
    .command('down')
    .description('remove a lab (or every lab) and anything a crashed run left behind')
    .argument('[lab]', 'lab name (default: all labs)')
    .action(async (name: string | undefined) => {
      preflight(['ip']);
      const names = name ? [name] : await knownLabs();
      for (const n of names) {
        const removed = await Lab.destroy(n);
        console.log(`lab ${n}: removed ${removed.length} namespaces`);
      }
      if (names.length === 0) console.log('no lab to remove');
    });

  lab
    .command('demo')
    .description('the demo: a hub, an agent and a plain client behind home NATs go direct and roam; a laptop joins with a code, moves behind a symmetric NAT (relay) and back (direct); all torn down')
    .option('--topology <file>', 'topology to use', new URL('../../../topologies/seed000.yaml', import.meta.url).pathname)
    .option('--json', 'print the final figures as JSON')
    .action(async (opts: { topology: string; json?: boolean }) => {
      teardownOnExit();
      const tty = process.stdout.isTTY && !opts.json;
      let drawn = 0;
      const render = (rows: DemoRow[], title: string) => {
        const text = `${title}\n${renderTable(['PAIR', 'PATH', 'TIME TO PATH', 'HANDSHAKE AGE', 'ENDPOINT SEEN'], rows.map((r) => [r.pair, r.path, r.timeToPathMs === null ? '-' : `${r.timeToPathMs} ms`, age(r.handshakeAgeMs), r.endpoint ?? '-']))}\n`;
        // A live table on a terminal (redrawn in place); a plain log otherwise.
        if (tty && drawn) process.stdout.write(`\x1b[${drawn}A\x1b[0J`);
        process.stdout.write(text);
        drawn = tty ? text.split('\n').length - 1 : 0;
      };
      const out = await runDemo(opts.topology, {
        step: (m) => {
          drawn = 0;
          if (!opts.json) console.log(`==> ${m}`);
        },
        table: (rows, title) => {
          if (!opts.json) render(rows, title);
        },
      });
      if (opts.json) console.log(JSON.stringify(out));
      else
        console.log(
          `done: phone direct ${out.joinMs} ms after it started, direct again ${out.roamMs} ms after it roamed; laptop joined ${out.meshJoinMs} ms, relayed ${out.toRelayMs} ms after moving behind a symmetric NAT, direct ${out.backToDirectMs} ms after coming back.`,
        );
    });

  lab
    .command('verify')
    .description('build one router per NAT profile and IPv6 firewall (stateful, open; IPv6-only hosts) and prove each behaves as named, over IPv4 and IPv6 (the truth table)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      teardownOnExit();
      const results = await verifyProfiles({ onProgress: progressPrinter('verify') });
      if (opts.json) console.log(JSON.stringify(results, null, 2));
      else printVerify(results);
      if (results.some((r) => r.mismatches.length)) process.exitCode = 1;
    });

  lab
    .command('matrix')
    .description('two agents for every pair of NAT profiles, then for every pair of address families (IPv4-only, dual-stack, IPv6-only), all at once: which path each pair gets (direct over which family, relay), how fast, and whether traffic flows')
    .option('--only <table>', 'run one table: "nat" (NAT profiles) or "family" (address families)')
    .option('--json', 'print JSON: { nat: [cells], family: [cells] }')
    .action(async (opts: { only?: string; json?: boolean }) => {
      if (opts.only !== undefined && opts.only !== 'nat' && opts.only !== 'family') throw new Error(`--only must be "nat" or "family", not "${opts.only}"`);
      teardownOnExit();
      const nat = opts.only === 'family' ? undefined : await runMatrix({ onProgress: progressPrinter('matrix') });
      const family = opts.only === 'nat' ? undefined : await runFamilyMatrix({ onProgress: progressPrinter('family matrix') });
      if (opts.json) console.log(JSON.stringify({ nat, family }, null, 2));
      else console.log([nat && renderMatrix(nat), family && renderFamilyMatrix(family)].filter(Boolean).join('\n\n'));
      if ([...(nat ?? []), ...(family ?? [])].some((c) => (c.path === 'direct' || c.path === 'relay') && c.replies < c.sent - 1)) process.exitCode = 1;
    });

  lab
    .command('vm')
    .description("run a command in a QEMU guest with Debian's kernel (its WireGuard module, netfilter, veth): this checkout at the same path, node, the lab's tools, no network; torn down after")
    .argument('<cmd...>', 'command and arguments (put them after --), e.g. -- node --test dist/test/lab/hub/p2p.test.js')
    .option('--accel <how>', 'auto (KVM if a probe boot works, else TCG), kvm or tcg', 'auto')
    .option('--memory <MiB>', 'guest memory', '3072')
    .option('--cpus <n>', 'guest CPUs', '2')
    .option('--boot-timeout <s>', 'seconds until the guest must be ready', '180')
    .option('--timeout <s>', 'seconds the command may run in the guest', '3600')
    .option('--env <K=V...>', 'environment for the command (WGP2P_* of this shell go along; WGP2P_DATA_PLANE=kernel is set)')
    .option('--kernel-package <pkg>', 'Debian kernel package or meta-package to boot, e.g. linux-image-6.12-cloud-amd64 (6.12 on Debian 12, from bookworm-security); WGP2P_VM_KERNEL_PACKAGE sets the default', process.env.WGP2P_VM_KERNEL_PACKAGE || KERNEL_META_PACKAGE)
    .option('--rebuild', 'rebuild the cached guest image')
    .option('--parallel <n>', 'split the files of `node --test … FILES` over n guests booted at once (one host core each under TCG); one summary at the end', '1')
    .action(async (cmd: string[], raw: VmCliOptions) => {
      const { parallel, ...opts } = parseVmOptions(raw);
      const log = (m: string) => console.error(`lab vm: ${m}`);
      if (parallel > 1) {
        const t0 = performance.now();
        const r = await runInVmParallel({ argv: cmd, ...opts, log }, parallel).catch(exitIfInterrupted);
        console.error(`lab vm: ${r.groups.length} guests (${r.accel}) done after ${((performance.now() - t0) / 1000).toFixed(1)} s wall; exit ${r.code}; guests stopped`);
        process.exitCode = r.code;
        return;
      }
      const r = await runInVm({ argv: cmd, ...opts, log }).catch(exitIfInterrupted);
      console.error(`lab vm: the command exited ${r.code} after ${(r.runMs / 1000).toFixed(1)} s in the guest (boot ${(r.bootMs / 1000).toFixed(1)} s, ${r.accel}); guest stopped`);
      process.exitCode = r.code;
    });
}
