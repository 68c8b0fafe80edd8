import type { Command } from 'commander';
import type { IpAddress } from '../core/net/address.js';
import { createLogger } from '../core/log.js';
import { RelayNode } from '../relay/relay-node.js';
import { relayStreamIdentity } from '../relay/stream-identity.js';
import { loadAgentConfig } from './node-config.js';
import { collectRelayMachineAddresses, portArg, portRangeArg } from './validate.js';

/** As the hub's stream side: HTTPS's port, which networks that block UDP let through. */
const DEFAULT_RELAY_TCP_PORT = 443;

interface RelayRunOptions {
  config: string;
  address: IpAddress[];
  ports: [number, number];
  userspace?: boolean;
  tcpPort: number;
  /** false with --no-tcp (commander's negated option). */
  tcp: boolean;
  tlsCert?: string;
  tlsKey?: string;
}

export function registerRelay(program: Command): void {
  program
    .command('relay')
    .description('a relay on its own machine')
    .command('run')
    .description('register with the hub over this machine\'s tunnel and relay the pairs it allocates here')
    .requiredOption('--config <file>', 'NAME.relay.json from "wgp2p node add NAME --relay"')
    .requiredOption('--address <ip>', "this machine's public IPv4 or IPv6 address: nodes send to it, the relay's ports bind to it. Give it twice, once per family, to serve both and bridge an IPv6-only node with an IPv4-only one", collectRelayMachineAddresses)
    .option('--ports <min-max>', 'UDP ports for allocations (two per relayed pair)', portRangeArg, [52000, 52999] as [number, number])
    .option('--userspace', 'forward in userspace only (no nftables fast path)')
    .option('--tcp-port <port>', 'TCP port of the stream side (WireGuard over TLS, for nodes on networks that block UDP), on --address', portArg, DEFAULT_RELAY_TCP_PORT)
    .option('--no-tcp', 'no stream side: the hub relays pairs with a side on a network that blocks UDP elsewhere')
    .option('--tls-cert <file>', 'your own certificate for the stream side (PEM; default: a self-signed one made beside --config, pinned through the hub)')
    .option('--tls-key <file>', 'the key of --tls-cert (PEM)')
    .action(async (o: RelayRunOptions) => {
      if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new Error('--tls-cert and --tls-key go together: give both, or neither for a self-signed identity');
      const config = loadAgentConfig(o.config);
      const log = createLogger('relay');
      let stream;
      if (o.tcp !== false) {
        const { identity, generated, files } = await relayStreamIdentity(o.config, o.tlsCert && o.tlsKey ? { cert: o.tlsCert, key: o.tlsKey } : undefined);
        if (generated) log.info({ cert: files.cert, key: files.key, pin: identity.pin }, 'stream side: made a self-signed TLS identity');
        stream = { port: o.tcpPort, identity };
      }
      const node = new RelayNode({ config, addresses: o.address, portMin: o.ports[0], portMax: o.ports[1], userspace: o.userspace, stream, log });
      await node.start();
      const stop = () => void node.stop().finally(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
