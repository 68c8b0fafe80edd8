import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentConfig, clientConfig, hubConfig, proxiedConfig } from '../core/configs.js';
import type { AgentConfig } from '../core/protocol.js';
import type { NodeRecord, Store } from '../core/store.js';
import { formatWgQuick } from '../core/wgquick.js';
import { peersVisibleTo } from './peer-view.js';

/** The files the hub's directory holds besides its store. Everything with a key or token is 0600. */

export function writeSecret(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
}

export function nodesDir(dir: string): string {
  const d = join(dir, 'nodes');
  mkdirSync(d, { recursive: true, mode: 0o700 });
  return d;
}

export function hubApiUrl(store: Store): string {
  const hub = store.hub();
  return `http://${hub.address.split('/')[0]}:${hub.apiPort}`;
}

/** hub.conf lists every node as a peer, so that `wg-quick up hub.conf` alone already admits them. */
export function writeHubConf(dir: string, store: Store): string {
  const path = join(dir, 'hub.conf');
  writeSecret(path, formatWgQuick(hubConfig(store.hub(), store.nodes())));
  return path;
}

export interface NodeFiles {
  conf: string;
  proxiedConf?: string;
  agentJson?: string;
}

export function renderNodeConf(store: Store, node: NodeRecord, proxied = false): string {
  const hub = store.hub();
  // Only agents sharing a group with the client, and never one still waiting to join (it has no key of its own yet).
  const agents = peersVisibleTo(node, store.nodes()).filter((n) => n.kind === 'agent');
  if (node.kind !== 'client' && node.privateKey === '') throw new Error(`node "${node.name}" made its own key when it joined; its config is on the device`);
  if (node.kind !== 'client') return formatWgQuick(agentConfig(hub, node));
  return formatWgQuick(proxied ? proxiedConfig(hub, node, agents) : clientConfig(hub, node, agents));
}

export function writeNodeFiles(dir: string, store: Store, node: NodeRecord, token?: string): NodeFiles {
  const d = nodesDir(dir);
  const files: NodeFiles = { conf: join(d, `${node.name}.conf`) };
  writeSecret(files.conf, renderNodeConf(store, node));
  if (node.kind === 'client') {
    files.proxiedConf = join(d, `${node.name}.proxied.conf`);
    writeSecret(files.proxiedConf, renderNodeConf(store, node, true));
  }
  if (node.kind !== 'client' && token) {
    files.agentJson = join(d, `${node.name}.${node.kind}.json`);
    const cfg: AgentConfig = { name: node.name, hubUrl: hubApiUrl(store), token };
    writeSecret(files.agentJson, JSON.stringify(cfg, null, 2) + '\n');
  }
  return files;
}
