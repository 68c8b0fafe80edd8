import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { createLogger } from '../core/log.js';
import { keepRunning } from '../core/long-running.js';
import { IpAddress } from '../core/net/address.js';
import { Cidr, Prefixed } from '../core/net/cidr.js';
import { HostPort } from '../core/net/endpoint.js';
import { randomUlaPrefix } from '../hub/address-plan.js';
import { writeHubConf, nodesDir } from '../hub/files.js';
import { Hub } from '../hub/hub.js';
import { generateKeyPair } from '../core/wireguard/keys.js';
import type { HubSettings } from '../hub/store/model.js';
import { createStore } from '../hub/store/store.js';
import { DEFAULT_TCP_PORT, planHubStream, writeHubStream } from '../hub/stream-identity.js';
import { relayAddressesProblem } from '../core/relay-protocol.js';
import { hubUnit } from '../core/systemd/units.js';
import { enableHint, installUnit, SYSTEMD_DIR, thisPrograms } from './service.js';
import { address6Arg, addressWithPrefixArg, hubEndpointArg, millisecondsArg, portArg, secondsArg, subnetArg } from './validate.js';

/**
 * Defaults, chosen from lab measurements (README, "Defaults"):
 * - a client's keepalive toward the hub bounds how late the hub sees a roam;
 * - 25 s toward peers and from agents to the hub keeps NAT mappings (30 s minimum on Linux) alive.
 */
export const DEFAULTS = { clientHubKeepalive: 1, peerKeepalive: 25, agentHubKeepalive: 25, staleAfterSec: 120, apiPort: 51821 };

interface InitOptions {
  dir: string;
  endpoint: string[];
  address6?: string;
  address: string;
  listenPort?: number;
  proxiedSubnet?: string;
  apiPort: number;
  clientHubKeepalive: number;
  peerKeepalive: number;
  staleAfter: number;
  json?: boolean;
  service?: boolean;
  systemdDir: string;
  /** false with --no-tcp (commander's negated option). */
  tcp: boolean;
  tlsCert?: string;
  tlsKey?: string;
}

function collectEndpoints(v: string, all: string[]): string[] {
  return [...all, hubEndpointArg(v)];
}

/** One or two endpoints: at most one address of each family (a DNS name may stand for both). */
function hubEndpoints(texts: string[]): HostPort[] {
  const list = texts.map((t) => HostPort.parse(t));
  if (list.length > 2) throw new Error(`--endpoint was given ${list.length} times; give one, or an IPv4 and an IPv6 one`);
  for (const family of [4, 6] as const) {
    if (list.filter((e) => e.address?.family === family).length > 1) throw new Error(`--endpoint was given two IPv${family} addresses; give one IPv4 and one IPv6 endpoint (or a DNS name)`);
  }
  return list;
}

/** `--relay-address`, repeatable: one address, or one of each family, each one nodes can reach. */
function collectRelayAddresses(v: string, all: IpAddress[] | undefined): IpAddress[] {
  let a: IpAddress;
  try {
    a = IpAddress.parse(v);
  } catch (err) {
    throw new InvalidArgumentError(`"${v}" must be the IPv4 or IPv6 address of the hub's relay (${(err as Error).message})`);
  }
  const list = [...(all ?? []), a];
  const why = relayAddressesProblem(list);
  if (why) throw new InvalidArgumentError(why);
  return list;
}

export function registerHub(program: Command): void {
  const hub = program.command('hub').description('the public server: directory, endpoint observer, control API');

  hub
    .command('init')
    .description("create the hub's keys, store and hub.conf")
    .requiredOption('--dir <dir>', 'directory for the store, hub.conf and node files')
    .requiredOption('--endpoint <host:port>', 'how nodes reach the hub from the internet: an IPv4 address, a bracketed IPv6 address ([2001:db8::2]:51820) or a DNS name, with the port; give it twice for both families', collectEndpoints, [] as string[])
    .requiredOption('--address <addr/prefix>', "the hub's tunnel address; the prefix is the network nodes get addresses from", addressWithPrefixArg)
    .option('--address6 <prefix/64>', "the tunnel's IPv6 network, a /64 of unique-local space (fd00::/8); every node gets the address prefix + its host number (default: a random one, RFC 4193)", address6Arg)
    .option('--listen-port <port>', "WireGuard listen port (default: the endpoint's port)", portArg)
    .option('--proxied-subnet <cidr>', 'addresses for proxied client configs (default: the block after the tunnel network)', subnetArg)
    .option('--api-port <port>', 'control API port on the tunnel address', portArg, DEFAULTS.apiPort)
    .option('--client-hub-keepalive <s>', "keepalive in client configs toward the hub (bounds roaming time)", secondsArg, DEFAULTS.clientHubKeepalive)
    .option('--peer-keepalive <s>', 'keepalive between clients and agents', secondsArg, DEFAULTS.peerKeepalive)
    .option('--stale-after <s>', "stop keepalives to a client silent at the hub this long", secondsArg, DEFAULTS.staleAfterSec)
    .option('--json', 'print JSON')
    .option('--service', 'also install the systemd unit wgp2p-hub.service (brings hub.conf up, then "hub run")')
    .option('--systemd-dir <dir>', 'where --service installs the unit', SYSTEMD_DIR)
    .option('--tcp-port <port>', 'TCP port of the stream side (WireGuard over TLS, for networks that block UDP)', portArg, DEFAULT_TCP_PORT)
    .option('--no-tcp', 'no stream side: nodes on networks that block UDP cannot connect')
    .option('--tls-cert <pem>', "the stream side's certificate (default: a self-signed one, pinned in join codes and agent configs)")
    .option('--tls-key <pem>', 'the key of --tls-cert')
    .action(async (o: InitOptions & { tcpPort?: number }) => {
      if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new Error('--tls-cert and --tls-key go together: give both, or neither for a self-signed certificate');
      // Rendered first: a directory a unit cannot name fails before anything is created.
      const unit = hubUnit(thisPrograms(), { dir: resolve(o.dir) });
      const address = Prefixed.parse(o.address);
      const net = address.subnet;
      // The block of the same size right after the tunnel network, so every host number has a proxied address.
      const proxied = o.proxiedSubnet !== undefined ? Cidr.parse(o.proxiedSubnet) : net.next();
      if (proxied.overlaps(net)) throw new Error(`--proxied-subnet ${proxied} overlaps the tunnel network ${net}`);
      // Host number h is a client's proxied address and a joining agent's one-time tunnel address
      // in this subnet: a smaller one would give two nodes one address, or land inside the tunnel.
      if (proxied.size < net.size) throw new Error(`--proxied-subnet ${proxied} is smaller than the tunnel network ${net}; give a /${net.prefix} (or larger), e.g. ${net.next()}`);
      const endpoints = hubEndpoints(o.endpoint);
      const ula = o.address6 !== undefined ? { tunnel: Cidr.parse(o.address6), proxied: Cidr.parse(o.address6).next() } : randomUlaPrefix(randomBytes);
      const hubHost = Number(net.offsetOf(address.address));
      // commander gives --tcp-port's value under tcpPort, and --no-tcp as tcp: false. An
      // operator's certificate is checked here, before anything is created.
      const streamPlan = await planHubStream({ port: o.tcp === false ? null : (o.tcpPort ?? DEFAULT_TCP_PORT), own: o.tlsCert && o.tlsKey ? { cert: o.tlsCert, key: o.tlsKey } : undefined });
      mkdirSync(o.dir, { recursive: true, mode: 0o700 });
      const keys = generateKeyPair();
      const h: HubSettings = {
        privateKey: keys.privateKey,
        publicKey: keys.publicKey,
        endpoints,
        address,
        address6: Prefixed.of(ula.tunnel.nth(hubHost), 64),
        proxiedSubnet: proxied,
        proxiedSubnet6: ula.proxied,
        listenPort: o.listenPort ?? endpoints[0].port,
        apiPort: o.apiPort,
        clientHubKeepalive: o.clientHubKeepalive,
        peerKeepalive: o.peerKeepalive,
        agentHubKeepalive: DEFAULTS.agentHubKeepalive,
        staleAfterSec: o.staleAfter,
      };
      await (await createStore(o.dir, h)).close();
      nodesDir(o.dir);
      const stream = writeHubStream(o.dir, streamPlan);
      const conf = writeHubConf(o.dir, h);
      const installed = o.service ? installUnit(unit, o.systemdDir) : undefined;
      const out = { unit: installed, dir: o.dir, config: conf, publicKey: h.publicKey, endpoints: h.endpoints.map(String), address: h.address.toString(), address6: h.address6.toString(), proxiedSubnet: h.proxiedSubnet.toString(), proxiedSubnet6: h.proxiedSubnet6.toString(), listenPort: h.listenPort, api: `${h.address.address}:${h.apiPort}`, stream: { port: stream.port, pin: stream.pin, certificate: stream.generated ? 'self-signed' : 'operator' } };
      if (o.json) console.log(JSON.stringify(out, null, 2));
      else {
        console.log(`hub created in ${o.dir}
  public key      ${out.publicKey}
  endpoint        ${out.endpoints.join(' and ')} (listen port ${out.listenPort})
  tunnel address  ${out.address} and ${out.address6}, proxied clients in ${out.proxiedSubnet} and ${out.proxiedSubnet6}
  control API     ${out.api} (tunnel only)
  stream side     ${stream.port === null ? 'off (--no-tcp)' : `TCP ${stream.port}, TLS key ${stream.pin} (${stream.generated ? 'self-signed' : 'your certificate'}, pinned in join codes)`}
${installed ? `installed ${installed}; start the hub now and at every boot with:\n  ${enableHint(unit)}` : `next, at every boot: wgp2p service hub --dir ${resolve(o.dir)} --install (or by hand: wg-quick up ${conf}, then wgp2p hub run --dir ${o.dir} --interface hub)`}`);
      }
    });

  hub
    .command('run')
    .description("attach to the hub's WireGuard interface and serve the control plane")
    .requiredOption('--dir <dir>', 'the hub directory')
    .requiredOption('--interface <if>', 'the WireGuard interface brought up from hub.conf')
    .option('--poll-ms <ms>', 'shortest device read interval', millisecondsArg, 20)
    .option('--no-relay', 'no relay inside the hub: only relays that register ("wgp2p relay run")')
    .option('--tcp-port <port>', "the stream side's TCP port (WireGuard over TLS; default: the one hub init chose, 443)", portArg)
    .option('--no-tcp', 'no stream side: nodes on networks that block UDP cannot connect')
    .option('--relay-address <ip>', "address of the hub's own relay, where nodes send relayed traffic; give it twice for IPv4 and IPv6 (an IPv6-only node and an IPv4-only node are then bridged). Default: the hub's endpoints (hub init --endpoint) that are IP addresses, one per family", collectRelayAddresses)
    .option('--stun-port <port>', 'UDP port (and the next one) of the STUN responder that "wgp2p doctor" measures networks with, on the relay\'s addresses', portArg, 3478)
    .option('--no-stun', 'no STUN responder: doctor then learns only what WireGuard and the hub see')
    .action(async (o: { dir: string; interface: string; pollMs: number; relay: boolean; relayAddress?: IpAddress[]; stunPort: number; stun: boolean; tcp: boolean; tcpPort?: number }) => {
      const log = createLogger('hub');
      keepRunning(log);
      const h = new Hub({ dir: o.dir, ifname: o.interface, log, pollMs: o.pollMs, noBuiltinRelay: !o.relay, relayAddresses: o.relayAddress, stunPort: o.stun ? o.stunPort : null, tcpPort: o.tcp === false ? false : o.tcpPort });
      await h.start();
      const stop = () => void h.stop().finally(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
