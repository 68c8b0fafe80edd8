import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from '../core/protocol.js';
import { formatWgQuick } from '../core/wgquick.js';
import { agentConfig, clientConfig, hubConfig, proxiedConfig } from './configs.js';
import type { HubSettings, NodeRecord, Observation } from './store/model.js';
import type { DirectoryStore } from './store/store.js';

/** The files the hub's directory holds besides its store. Everything with a key or token is 0600. */

export function writeSecret(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
}

export function nodesDir(dir: string): string {
  const d = join(dir, 'nodes');
  mkdirSync(d, { recursive: true, mode: 0o700 });
  return d;
}

export function hubApiUrl(hub: HubSettings): string {
  return `http://${hub.address.address}:${hub.apiPort}`;
}

/** hub.conf: the interface alone; `hub run` adds every node from the store (configs.ts says why). Written once, by `hub init`. */
export function writeHubConf(dir: string, hub: HubSettings): string {
  const path = join(dir, 'hub.conf');
  writeSecret(path, formatWgQuick(hubConfig(hub)));
  return path;
}

export interface NodeFiles {
  conf: string;
  proxiedConf?: string;
  agentJson?: string;
}

/** The agents a client's configs list, and where the hub saw them. */
export interface ClientAgents {
  agents: NodeRecord[];
  observed: Map<string, Observation>;
}

/** Those sharing a group with the client (one indexed query), never one still waiting to join. */
async function clientAgents(store: DirectoryStore, node: NodeRecord): Promise<ClientAgents> {
  const agents = (await store.members(node.groups, 'agent')).filter((a) => a.publicKey !== node.publicKey);
  const observed = await store.observations(agents.filter((a) => !a.proxied && !a.fixedEndpoint).map((a) => a.publicKey));
  return { agents, observed };
}

export async function renderNodeConf(store: DirectoryStore, node: NodeRecord, proxied = false, known?: ClientAgents): Promise<string> {
  const hub = await store.hub();
  if (node.kind !== 'client' && node.privateKey === '') throw new Error(`node "${node.name}" made its own key when it joined; its config is on the device`);
  if (node.kind !== 'client') return formatWgQuick(agentConfig(hub, node));
  const { agents, observed } = known ?? (await clientAgents(store, node));
  return formatWgQuick(proxied ? proxiedConfig(hub, node, agents) : clientConfig(hub, node, agents, observed));
}

export async function writeNodeFiles(dir: string, store: DirectoryStore, node: NodeRecord, token?: string): Promise<NodeFiles> {
  const d = nodesDir(dir);
  const files: NodeFiles = { conf: join(d, `${node.name}.conf`) };
  const known = node.kind === 'client' ? await clientAgents(store, node) : undefined;
  writeSecret(files.conf, await renderNodeConf(store, node, false, known));
  if (node.kind === 'client') {
    files.proxiedConf = join(d, `${node.name}.proxied.conf`);
    writeSecret(files.proxiedConf, await renderNodeConf(store, node, true, known));
  }
  if (node.kind !== 'client' && token) {
    files.agentJson = join(d, `${node.name}.${node.kind}.json`);
    const cfg: AgentConfig = { name: node.name, hubUrl: hubApiUrl(await store.hub()), token };
    writeSecret(files.agentJson, JSON.stringify(cfg, null, 2) + '\n');
  }
  return files;
}
