import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { Agent } from '../agent/agent.js';
import { createLogger } from '../core/log.js';
import { agentConfigSchema, decode, type AgentConfig } from '../core/protocol.js';

export function loadAgentConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read agent config ${path}: ${(err as Error).message}`);
  }
  if ((statSync(path).mode & 0o077) !== 0) throw new Error(`${path} holds a token and must be mode 0600 (chmod 600 ${path})`);
  return decode(agentConfigSchema, text, path);
}

/** The interface wg-quick made from NAME.conf is named NAME. */
export function agentInterface(cfg: AgentConfig, path: string, given?: string): string {
  return given ?? cfg.interface ?? basename(path).replace(/\.agent\.json$/, '');
}

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('the device side')
    .command('run')
    .description("keep this device's WireGuard peers in line with the hub")
    .requiredOption('--config <file>', 'NAME.agent.json from "wgp2p node add NAME --agent"')
    .option('--interface <if>', 'WireGuard interface (default: NAME)')
    .action(async (o: { config: string; interface?: string }) => {
      const cfg = loadAgentConfig(o.config);
      const agent = new Agent({ config: cfg, ifname: agentInterface(cfg, o.config, o.interface), log: createLogger('agent') });
      await agent.start();
      const stop = () => void agent.stop().finally(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
