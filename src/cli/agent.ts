import type { Command } from 'commander';
import { Agent } from '../agent/agent.js';
import { createLogger } from '../core/log.js';
import { keepRunning } from '../core/long-running.js';
import { agentInterface, loadAgentConfig } from './node-config.js';

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('the device side')
    .command('run')
    .description("keep this device's WireGuard peers in line with the hub")
    .requiredOption('--config <file>', 'NAME.agent.json from "wgp2p node add NAME --agent"')
    .option('--interface <if>', 'WireGuard interface (default: NAME)')
    .option('--no-port-mapping', "do not ask the router to map WireGuard's port (PCP, NAT-PMP, UPnP-IGD)")
    .action(async (o: { config: string; interface?: string; portMapping: boolean }) => {
      const cfg = loadAgentConfig(o.config);
      const agentLog = createLogger('agent');
      keepRunning(agentLog);
      const agent = new Agent({ config: cfg, ifname: agentInterface(cfg, o.config, o.interface), log: agentLog, portMapping: o.portMapping });
      await agent.start();
      const stop = () => void agent.stop().finally(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
