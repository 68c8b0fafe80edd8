import { writeSecret } from '../core/secret-file.js';
import type { Command } from 'commander';
import QRCode from 'qrcode';
import { encodeJoinCode } from '../core/join-code.js';
import { nodeAddress6 } from '../hub/address-plan.js';
import { hubEndpointFor, hubEndpointsFor } from '../hub/configs.js';
import { addNode, changeNode, enrolAddress, enrolAddress6, reissueToken, type AddedNode } from '../hub/directory.js';
import { halfMadeNode, renderNodeConf, writeNodeFiles } from '../hub/files.js';
import { openStore, type DirectoryStore } from '../hub/store/store.js';
import { hubStreamConfig } from '../hub/stream-identity.js';
import { renderTable } from './table.js';
import { durationArg, familyArg, hubEndpointArg, routesArg } from './validate.js';

/** What to run on the node's machine once its two files are there; the unit comes from `wgp2p service`. */
function serviceHint(name: string, kind: 'agent' | 'relay'): string {
  const run = kind === 'relay' ? `wgp2p service relay --name ${name} --address PUBLIC_IP --install` : `wgp2p service agent --name ${name} --install`;
  return `on the ${kind}'s machine: copy ${name}.conf and ${name}.${kind}.json to /etc/wgp2p/ (mode 0600), then, to run it at every boot:\n  ${run}`;
}

async function printQr(text: string, opts: { qr?: boolean; qrPng?: string; qrSvg?: string }): Promise<void> {
  if (opts.qr) console.log(await QRCode.toString(text, { type: 'terminal', small: true }));
  // A QR code of a config or a join code is the secret itself: 0600, like the config.
  if (opts.qrPng) writeSecret(opts.qrPng, await QRCode.toBuffer(text, { type: 'png' }));
  if (opts.qrSvg) writeSecret(opts.qrSvg, await QRCode.toString(text, { type: 'svg' }));
}

/** Opens the store for one command and always closes it. */
async function withStore<T>(dir: string, fn: (store: DirectoryStore) => Promise<T>): Promise<T> {
  const store = await openStore(dir);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

const qrOptions = (c: Command) =>
  c
    .option('--qr', 'print the config as a QR code in the terminal')
    .option('--qr-png <file>', 'write the QR code as PNG')
    .option('--qr-svg <file>', 'write the QR code as SVG');

export function registerNode(program: Command): void {
  const node = program.command('node').description('add, change, list and remove nodes (run on the hub)');

  qrOptions(
    node
      .command('add')
      .description('add an agent node or a plain client and write its files to DIR/nodes/')
      .argument('<name>', 'node name: 1-15 lower-case letters, digits, "-" (also its interface name)')
      .requiredOption('--dir <dir>', 'the hub directory')
      .option('--agent', 'a device that runs the wgp2p agent')
      .option('--client', 'a plain WireGuard client (phone, laptop): configs only')
      .option('--relay', 'a relay on its own machine ("wgp2p relay run"): a tunnel to the hub and a token')
      .option('--proxied', 'agents: reach every peer through the hub (never direct, never a relay)')
      .option('--address <addr>', 'tunnel address (default: the next free one)')
      .option('--endpoint <host:port>', 'agents: fixed public endpoint given to clients (static address, [IPv6]:port or a DDNS name)', hubEndpointArg)
      .option('--hub-endpoint <host:port>', "which of the hub's endpoints this node's config uses (default: the first; an IPv6-only network needs the IPv6 one)")
      .option('--routes <cidr,...>', 'agents: subnets behind this node that clients may reach', routesArg)
      .option('--groups <g,...>', 'who this node may see and reach: nodes sharing a group (default: default)', (v: string) => v.split(',').map((g) => g.trim()))
      .option('--join', 'agents: print a one-line join code; the device makes its own key ("wgp2p join CODE")')
      .option('--join-valid <duration>', 'how long the join code is accepted (s, m, h)', durationArg, 3_600_000)
      .option('--json', 'print JSON'),
  ).action(async (name: string, o: { dir: string; agent?: boolean; client?: boolean; relay?: boolean; proxied?: boolean; address?: string; endpoint?: string; hubEndpoint?: string; routes?: string[]; groups?: string[]; join?: boolean; joinValid: number; json?: boolean; qr?: boolean; qrPng?: string; qrSvg?: string }) => {
    if ([o.agent, o.client, o.relay].filter(Boolean).length !== 1) throw new Error('say what the node is: --agent, --client or --relay');
    const kind = o.agent ? 'agent' : o.client ? 'client' : 'relay';
    await withStore(o.dir, async (store) => {
      // Run again after a `node add` that stopped between the store and the files: finish that node.
      const half = o.join ? undefined : await halfMadeNode(o.dir, store, name, kind);
      if (half) console.error(`node ${name} was in the store without its files (an earlier "node add" stopped before writing them): writing them now${kind === 'client' ? '' : ', with a new token'}; it keeps its address and the options of that first run (change them with "node set")`);
      const added: AddedNode = half ? (kind === 'client' ? { node: half } : await reissueToken(store, name)) : await addNode(store, { name, kind, address: o.address, endpoint: o.endpoint, hubEndpoint: o.hubEndpoint, routes: o.routes, groups: o.groups, proxied: o.proxied, joinValidMs: o.join ? o.joinValid : undefined });
      const hub = await store.hub();
      const address6 = nodeAddress6(hub, added.node.hostNumber);
      if (added.enrolPrivateKey) {
        const code = encodeJoinCode({
          name,
          hubPublicKey: hub.publicKey,
          hubEndpoints: hubEndpointsFor(hub, added.node).map(String),
          hubAddress: hub.address.address.toString(),
          apiPort: hub.apiPort,
          key: added.enrolPrivateKey,
          address: `${enrolAddress(hub, added.node)}/${hub.proxiedSubnet.prefix}`,
          address6: `${enrolAddress6(hub, added.node)}/${hub.proxiedSubnet6.prefix}`,
          expiresAt: added.node.enrolExpiresAt!,
          stream: hubStreamConfig(o.dir),
        });
        if (o.json) console.log(JSON.stringify({ name, address: added.node.address.toString(), address6: address6.toString(), code, expiresAt: new Date(added.node.enrolExpiresAt!).toISOString() }, null, 2));
        // The code is a key: the instructions keep it out of the device's argv and shell history.
        else console.log(`agent ${name} will get ${added.node.address} and ${address6}. On the device, within ${Math.round(o.joinValid / 60_000)} min, run\n  wgp2p join -\nand paste this code when it asks:\n  ${code}`);
        await printQr(code, o);
        return;
      }
      const { node: n, token } = added;
      // hub.conf is not rewritten: a running hub admits the node from the store within 250 ms.
      const files = await writeNodeFiles(o.dir, store, n, token);
      if (o.json) console.log(JSON.stringify({ name: n.name, kind: n.kind, address: n.address, address6, proxiedAddress: n.proxiedAddress, publicKey: n.publicKey, listenPort: n.listenPort, hubEndpoint: hubEndpointFor(hub, n).toString(), files }, null, 2));
      else {
        console.log(`${n.kind} ${n.name} added: ${n.address} and ${address6}${n.proxiedAddress ? ` (proxied ${n.proxiedAddress})` : ''}`);
        for (const f of Object.values(files)) console.log(`  wrote ${f}`);
        if (n.kind !== 'client') console.log(serviceHint(n.name, n.kind));
      }
      await printQr(await renderNodeConf(store, n), o);
    });
  });

  node
    .command('set')
    .description('change a node: its groups, routes or proxied choice; a running hub applies it within a second')
    .argument('<name>')
    .requiredOption('--dir <dir>', 'the hub directory')
    .option('--groups <g,...>', 'who this node may see and reach', (v: string) => v.split(',').map((g) => g.trim()))
    .option('--routes <cidr,...>', 'agents: subnets behind this node', routesArg)
    .option('--proxied', 'agents: reach every peer through the hub')
    .option('--p2p', 'agents: leave proxied mode (direct or relay again)')
    .option('--hub-endpoint <host:port>', 'which of the hub\'s endpoints the node\'s config uses ("first": the hub\'s first); regenerate the config with "node config"')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { dir: string; groups?: string[]; routes?: string[]; proxied?: boolean; p2p?: boolean; hubEndpoint?: string; json?: boolean }) => {
      if (o.proxied && o.p2p) throw new Error('--proxied and --p2p contradict each other; pick one');
      await withStore(o.dir, async (store) => {
        const hubEndpoint = o.hubEndpoint === undefined ? undefined : o.hubEndpoint === 'first' ? null : o.hubEndpoint;
        const n = await changeNode(store, name, { groups: o.groups, routes: o.routes, proxied: o.proxied ? true : o.p2p ? false : undefined, hubEndpoint });
        const out = { name: n.name, groups: n.groups, routes: n.routes.map(String), proxied: n.proxied, hubEndpoint: hubEndpointFor(await store.hub(), n).toString() };
        if (o.json) console.log(JSON.stringify(out, null, 2));
        else console.log(`node ${n.name}: groups ${n.groups.join(',')}; routes ${n.routes.join(',') || '-'}; ${n.proxied ? 'proxied through the hub' : 'direct or relay'}`);
      });
    });

  node
    .command('list')
    .description('every node with its address and endpoint')
    .requiredOption('--dir <dir>', 'the hub directory')
    .option('--json', 'print JSON')
    .action(async (o: { dir: string; json?: boolean }) => {
      const nodes = await withStore(o.dir, async (store) => {
        const observed = await store.observations();
        const hub = await store.hub();
        return (await store.listNodes()).map((n) => ({
          name: n.name,
          kind: n.kind,
          address: n.address.toString(),
          address6: nodeAddress6(hub, n.hostNumber).toString(),
          proxiedAddress: n.proxiedAddress?.toString() ?? null,
          publicKey: n.publicKey,
          endpoint: n.fixedEndpoint?.toString() ?? observed.get(n.publicKey)?.[0]?.endpoint.toString() ?? null,
          endpoints: (observed.get(n.publicKey) ?? []).map((x) => x.endpoint.toString()),
          endpointFixed: n.fixedEndpoint !== null,
          listenPort: n.listenPort,
          routes: n.routes.map(String),
          groups: n.groups,
          proxied: n.proxied,
        }));
      });
      if (o.json) console.log(JSON.stringify(nodes, null, 2));
      else
        console.log(
          renderTable(
            ['NAME', 'KIND', 'ADDRESSES', 'PROXIED ADDR', 'ENDPOINTS', 'LISTEN', 'ROUTES', 'GROUPS'],
            nodes.map((n) => [n.name, n.kind + (n.proxied ? ' (proxied)' : ''), `${n.address} ${n.address6}`, n.proxiedAddress ?? '-', n.endpointFixed ? `${n.endpoint} (fixed)` : n.endpoints.join(' ') || '-', String(n.listenPort ?? '-'), n.routes.join(',') || '-', n.groups.join(',')]),
          ),
        );
    });

  node
    .command('remove')
    .description('remove a node; a running hub drops its peer within a second')
    .argument('<name>')
    .requiredOption('--dir <dir>', 'the hub directory')
    .action(async (name: string, o: { dir: string }) => {
      await withStore(o.dir, async (store) => {
        if (!(await store.removeNode(name))) throw new Error(`no node named "${name}" (see "wgp2p node list --dir ${o.dir}")`);
        console.log(`node ${name} removed`);
      });
    });

  qrOptions(
    node
      .command('config')
      .description("print a node's wg-quick config, with the endpoints known now")
      .argument('<name>')
      .requiredOption('--dir <dir>', 'the hub directory')
      .option('--proxied', 'the proxied fallback config (clients)')
      .option('--family <4|6>', "clients: give agents' endpoints of this family (6: a phone on an IPv6 network reaches an agent's IPv6 address directly)", familyArg, 4),
  ).action(async (name: string, o: { dir: string; proxied?: boolean; family: 4 | 6; qr?: boolean; qrPng?: string; qrSvg?: string }) => {
    await withStore(o.dir, async (store) => {
      const n = await store.node(name);
      if (!n) throw new Error(`no node named "${name}" (see "wgp2p node list --dir ${o.dir}")`);
      if (o.proxied && n.kind !== 'client') throw new Error('--proxied applies to clients only');
      const text = await renderNodeConf(store, n, { proxied: o.proxied, family: o.family });
      if (o.qr || o.qrPng || o.qrSvg) await printQr(text, o);
      else process.stdout.write(text);
    });
  });
}
