import type { Command } from 'commander';
import { isIPv4 } from '../core/ipv4.js';
import { createLogger } from '../core/log.js';
import { RelayNode } from '../relay/relay-node.js';
import { loadAgentConfig } from './node-config.js';

function portRange(v: string): [number, number] {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(v);
  const [min, max] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (!m || min < 1 || max > 65535 || min + 1 > max) throw new Error(`--ports "${v}" must be MIN-MAX with 1 <= MIN < MAX <= 65535 (each allocation takes two ports)`);
  return [min, max];
}

export function registerRelay(program: Command): void {
  program
    .command('relay')
    .description('a relay on its own machine')
    .command('run')
    .description('register with the hub over this machine\'s tunnel and relay the pairs it allocates here')
    .requiredOption('--config <file>', 'NAME.relay.json from "wgp2p node add NAME --relay"')
    .requiredOption('--address <ip>', 'this machine\'s public IPv4 address: nodes send to it, the relay\'s ports bind to it', (v: string) => {
      if (!isIPv4(v)) throw new Error(`--address "${v}" is not an IPv4 address`);
      return v;
    })
    .option('--ports <min-max>', 'UDP ports for allocations (two per relayed pair)', portRange, [52000, 52999] as [number, number])
    .option('--userspace', 'forward in userspace only (no nftables fast path)')
    .action(async (o: { config: string; address: string; ports: [number, number]; userspace?: boolean }) => {
      const config = loadAgentConfig(o.config);
      const node = new RelayNode({ config, address: o.address, portMin: o.ports[0], portMax: o.ports[1], userspace: o.userspace, log: createLogger('relay') });
      await node.start();
      const stop = () => void node.stop().finally(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
