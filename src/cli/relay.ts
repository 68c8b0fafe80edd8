import type { Command } from 'commander';
import type { IpAddress } from '../core/net/address.js';
import { createLogger } from '../core/log.js';
import { RelayNode } from '../relay/relay-node.js';
import { loadAgentConfig } from './node-config.js';
import { collectRelayMachineAddresses, portRangeArg } from './validate.js';

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
    .action(async (o: { config: string; address: IpAddress[]; ports: [number, number]; userspace?: boolean }) => {
      const config = loadAgentConfig(o.config);
      const node = new RelayNode({ config, addresses: o.address, portMin: o.ports[0], portMax: o.ports[1], userspace: o.userspace, log: createLogger('relay') });
      await node.start();
      const stop = () => void node.stop().finally(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
