import { mkdirSync } from 'node:fs';
import type { Command } from 'commander';
import { createLogger } from '../core/log.js';
import { Cidr, Prefixed } from '../core/net/cidr.js';
import { HostPort } from '../core/net/endpoint.js';
import { writeHubConf, nodesDir } from '../hub/files.js';
import { Hub } from '../hub/hub.js';
import { generateKeyPair } from '../core/wireguard/keys.js';
import type { HubSettings } from '../hub/store/model.js';
import { createStore } from '../hub/store/store.js';
import { addressWithPrefixArg, endpointArg, portArg, secondsArg, subnetArg } from './validate.js';

/**
 * Defaults, chosen from lab measurements (README, "Defaults"):
 * - a client's keepalive toward the hub bounds how late the hub sees a roam;
 * - 25 s toward peers and from agents to the hub keeps NAT mappings (30 s minimum on Linux) alive.
 */
export const DEFAULTS = { clientHubKeepalive: 1, peerKeepalive: 25, agentHubKeepalive: 25, staleAfterSec: 120, apiPort: 51821 };

interface InitOptions {
  dir: string;
  endpoint: string;
  address: string;
  listenPort?: number;
  proxiedSubnet?: string;
  apiPort: number;
  clientHubKeepalive: number;
  peerKeepalive: number;
  staleAfter: number;
  json?: boolean;
}

export function registerHub(program: Command): void {
  const hub = program.command('hub').description('the public server: directory, endpoint observer, control API');

  hub
    .command('init')
    .description("create the hub's keys, store and hub.conf")
    .requiredOption('--dir <dir>', 'directory for the store, hub.conf and node files')
    .requiredOption('--endpoint <host:port>', 'how nodes reach the hub from the internet', endpointArg)
    .requiredOption('--address <addr/prefix>', "the hub's tunnel address; the prefix is the network nodes get addresses from", addressWithPrefixArg)
    .option('--listen-port <port>', "WireGuard listen port (default: the endpoint's port)", portArg)
    .option('--proxied-subnet <cidr>', 'addresses for proxied client configs (default: the block after the tunnel network)', subnetArg)
    .option('--api-port <port>', 'control API port on the tunnel address', portArg, DEFAULTS.apiPort)
    .option('--client-hub-keepalive <s>', "keepalive in client configs toward the hub (bounds roaming time)", secondsArg, DEFAULTS.clientHubKeepalive)
    .option('--peer-keepalive <s>', 'keepalive between clients and agents', secondsArg, DEFAULTS.peerKeepalive)
    .option('--stale-after <s>', "stop keepalives to a client silent at the hub this long", secondsArg, DEFAULTS.staleAfterSec)
    .option('--json', 'print JSON')
    .action(async (o: InitOptions) => {
      const address = Prefixed.parse(o.address);
      const net = address.subnet;
      // The block of the same size right after the tunnel network, so every host number has a proxied address.
      const proxied = o.proxiedSubnet !== undefined ? Cidr.parse(o.proxiedSubnet) : net.next();
      if (proxied.overlaps(net)) throw new Error(`--proxied-subnet ${proxied} overlaps the tunnel network ${net}`);
      const endpoint = HostPort.parse(o.endpoint);
      mkdirSync(o.dir, { recursive: true, mode: 0o700 });
      const keys = generateKeyPair();
      const h: HubSettings = {
        privateKey: keys.privateKey,
        publicKey: keys.publicKey,
        endpoint,
        address,
        proxiedSubnet: proxied,
        listenPort: o.listenPort ?? endpoint.port,
        apiPort: o.apiPort,
        clientHubKeepalive: o.clientHubKeepalive,
        peerKeepalive: o.peerKeepalive,
        agentHubKeepalive: DEFAULTS.agentHubKeepalive,
        staleAfterSec: o.staleAfter,
      };
      await (await createStore(o.dir, h)).close();
      nodesDir(o.dir);
      const conf = writeHubConf(o.dir, h);
      const out = { dir: o.dir, config: conf, publicKey: h.publicKey, endpoint: h.endpoint.toString(), address: h.address.toString(), proxiedSubnet: h.proxiedSubnet.toString(), listenPort: h.listenPort, api: `${h.address.address}:${h.apiPort}` };
      if (o.json) console.log(JSON.stringify(out, null, 2));
      else {
        console.log(`hub created in ${o.dir}
  public key      ${out.publicKey}
  endpoint        ${out.endpoint} (listen port ${out.listenPort})
  tunnel address  ${out.address}, proxied clients in ${out.proxiedSubnet}
  control API     ${out.api} (tunnel only)
next: wg-quick up ${conf}, then: wgp2p hub run --dir ${o.dir} --interface hub`);
      }
    });

  hub
    .command('run')
    .description("attach to the hub's WireGuard interface and serve the control plane")
    .requiredOption('--dir <dir>', 'the hub directory')
    .requiredOption('--interface <if>', 'the WireGuard interface brought up from hub.conf')
    .option('--poll-ms <ms>', 'device read interval', (v) => Number(v), 20)
    .option('--no-relay', 'no relay inside the hub: only relays that register ("wgp2p relay run")')
    .option('--relay-address <ip>', "public address of the hub's own relay (default: the endpoint's, when it is an address)")
    .action(async (o: { dir: string; interface: string; pollMs: number; relay: boolean; relayAddress?: string }) => {
      const log = createLogger('hub');
      const h = new Hub({ dir: o.dir, ifname: o.interface, log, pollMs: o.pollMs, noBuiltinRelay: !o.relay, relayAddress: o.relayAddress });
      await h.start();
      const stop = () => void h.stop().finally(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
