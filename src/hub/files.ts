import { existsSync, mkdirSync } from 'node:fs';
import { writeSecret } from '../core/secret-file.js';
import { join } from 'node:path';
import type { Family } from '../core/net/address.js';
import type { Endpoint } from '../core/net/endpoint.js';
import type { AgentConfig } from '../core/protocol.js';
import { formatWgQuick } from '../core/wgquick.js';
import { agentConfig, clientConfig, hubConfig, hubEndpointsFor, proxiedConfig } from './configs.js';
import type { HubSettings, NodeKind, NodeRecord } from './store/model.js';
import type { DirectoryStore } from './store/store.js';
import { hubStreamConfig } from './stream-identity.js';

/** The files the hub's directory holds besides its store. Everything with a key or token is 0600. */

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

/** The agents a client's configs list, and where they were seen: each agent's endpoints, the preferred family first. */
export interface ClientAgents {
  agents: NodeRecord[];
  observed: Map<string, Endpoint[]>;
}

/**
 * Those sharing a group with the client (one indexed query), never one still waiting to join.
 * `family`: which family of an agent's endpoints the client should use first (a phone on an
 * IPv6 network reaches an agent's IPv6 address directly); default IPv4, the one every network has.
 */
async function clientAgents(store: DirectoryStore, node: NodeRecord, family: Family = 4): Promise<ClientAgents> {
  const agents = (await store.members(node.groups, 'agent')).filter((a) => a.publicKey !== node.publicKey);
  const seen = await store.observations(agents.filter((a) => !a.proxied && !a.fixedEndpoint).map((a) => a.publicKey));
  const observed = new Map([...seen].map(([k, list]) => [k, list.map((o) => o.endpoint).sort((x, y) => (x.family === family ? -1 : 0) - (y.family === family ? -1 : 0))]));
  return { agents, observed };
}

export interface RenderOptions {
  proxied?: boolean;
  /** Clients: put agents' endpoints of this family first. */
  family?: Family;
}

export async function renderNodeConf(store: DirectoryStore, node: NodeRecord, opts: RenderOptions = {}, known?: ClientAgents): Promise<string> {
  const hub = await store.hub();
  if (node.kind !== 'client' && node.privateKey === '') throw new Error(`node "${node.name}" made its own key when it joined; its config is on the device`);
  if (node.kind !== 'client') return formatWgQuick(agentConfig(hub, node));
  const { agents, observed } = known ?? (await clientAgents(store, node, opts.family));
  return formatWgQuick(opts.proxied ? proxiedConfig(hub, node, agents) : clientConfig(hub, node, agents, observed));
}

/** Where a node's files go: a client's two configs, an agent's or relay's config and its agent file (with the token). */
export function nodeFilePaths(dir: string, node: Pick<NodeRecord, 'name' | 'kind'>): Required<Pick<NodeFiles, 'conf'>> & NodeFiles {
  const d = join(dir, 'nodes');
  return node.kind === 'client' ? { conf: join(d, `${node.name}.conf`), proxiedConf: join(d, `${node.name}.proxied.conf`) } : { conf: join(d, `${node.name}.conf`), agentJson: join(d, `${node.name}.${node.kind}.json`) };
}

/**
 * A node `node add` put in the store but whose files it never finished writing (it was killed
 * in between): the store commits first, because the node's address is chosen inside its
 * transaction. Such a node was never seen by the hub (nobody has its key or token), so writing
 * its files again, with a new token, takes nothing from anyone. A node that joined with a code
 * has no files here and is never half made; one that was ever seen is not either, even if its
 * files were moved off the hub.
 */
export async function halfMadeNode(dir: string, store: DirectoryStore, name: string, kind: NodeKind): Promise<NodeRecord | undefined> {
  const node = await store.node(name);
  if (!node || node.kind !== kind || node.enrolKey !== null || (node.kind !== 'client' && node.tokenHash === null)) return undefined;
  const paths = Object.values(nodeFilePaths(dir, node));
  if (paths.every((p) => existsSync(p))) return undefined;
  return (await store.observations([node.publicKey])).size === 0 ? node : undefined;
}

export async function writeNodeFiles(dir: string, store: DirectoryStore, node: NodeRecord, token?: string): Promise<NodeFiles> {
  nodesDir(dir);
  const paths = nodeFilePaths(dir, node);
  const files: NodeFiles = { conf: paths.conf };
  const known = node.kind === 'client' ? await clientAgents(store, node) : undefined;
  writeSecret(files.conf, await renderNodeConf(store, node, {}, known));
  if (node.kind === 'client') {
    files.proxiedConf = paths.proxiedConf!;
    writeSecret(files.proxiedConf, await renderNodeConf(store, node, { proxied: true }, known));
  }
  if (node.kind !== 'client' && token) {
    files.agentJson = paths.agentJson!;
    const hub = await store.hub();
    const stream = hubStreamConfig(dir);
    const cfg: AgentConfig = { name: node.name, hubUrl: hubApiUrl(hub), token, hubEndpoints: hubEndpointsFor(hub, node).map(String), ...(stream ? { stream } : {}) };
    writeSecret(files.agentJson, JSON.stringify(cfg, null, 2) + '\n');
  }
  return files;
}
