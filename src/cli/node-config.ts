import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { agentConfigSchema, decode, type AgentConfig } from '../core/protocol.js';

/** NAME.agent.json or NAME.relay.json: how a node reaches its hub. It holds a token, so it must be 0600. */
export function loadAgentConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
  if ((statSync(path).mode & 0o077) !== 0) throw new Error(`${path} holds a token and must be mode 0600 (chmod 600 ${path})`);
  return decode(agentConfigSchema, text, path);
}

/** The interface wg-quick made from NAME.conf is named NAME. */
export function agentInterface(cfg: AgentConfig, path: string, given?: string): string {
  return given ?? cfg.interface ?? basename(path).replace(/\.(agent|relay)\.json$/, '');
}
