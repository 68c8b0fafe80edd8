import { createHash, randomBytes } from 'node:crypto';
import { contains, formatIPv4, isUsableHost, parseCidr, parseIPv4 } from '../core/ipv4.js';
import { generateKeyPair } from '../core/wireguard/keys.js';
import type { NodeKind, NodeRecord, Store } from '../core/store.js';
import { p2pSubnet } from '../core/configs.js';

/** Adding and removing nodes: allocation and validation happen here, before the store is touched. */

/** A node's config is NAME.conf and wg-quick names the interface after the file: 15 characters at most. */
export const NODE_NAME = /^[a-z0-9][a-z0-9-]{0,14}$/;
/** Clients get distinct listen ports so that two clients behind one NAT do not collide (seed 000). */
const CLIENT_PORT_BASE = 41000;
export const AGENT_LISTEN_PORT = 51820;

export class InputError extends Error {
  override name = 'InputError';
}

export interface AddNodeInput {
  name: string;
  kind: NodeKind;
  address?: string;
  endpoint?: string;
  routes?: string[];
  /** Agents: enrol with a join code valid this long; the device makes its own key. */
  joinValidMs?: number;
  /** Who this node may see and reach (default: the group "default"). */
  groups?: string[];
  /** Agents: reach every peer through the hub (never direct, never the relay). */
  proxied?: boolean;
}

export interface AddedNode {
  node: NodeRecord;
  /** The agent's token in clear: returned once, stored only as a hash. */
  token?: string;
  /** The join code's one-time private key (it goes into the code, nowhere else). */
  enrolPrivateKey?: string;
}

/** The address a joining agent uses for its one-time tunnel: its own, mirrored into the proxied subnet (agents have no proxied address). */
export function enrolAddress(hubProxiedSubnet: string, p2pSubnet: string, nodeAddress: string): string {
  const p = parseCidr(hubProxiedSubnet)!;
  const n = parseCidr(p2pSubnet)!;
  return formatIPv4(p.network + (parseIPv4(nodeAddress)! - n.network));
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function addNode(store: Store, input: AddNodeInput): AddedNode {
  const hub = store.hub();
  if (!NODE_NAME.test(input.name)) throw new InputError(`node name "${input.name}" is invalid: use 1-15 lower-case letters, digits and "-"`);
  const nodes = store.nodes();
  if (nodes.some((n) => n.name === input.name)) throw new InputError(`a node named "${input.name}" already exists; remove it first or pick another name`);
  const subnet = parseCidr(p2pSubnet(hub))!;
  const hubIp = parseIPv4(hub.address.split('/')[0])!;
  const used = new Set([hubIp, ...nodes.map((n) => parseIPv4(n.address)!)]);

  let ip: number;
  if (input.address !== undefined) {
    const given = parseIPv4(input.address.replace(/\/32$/, ''));
    if (given === undefined) throw new InputError(`--address "${input.address}" is not an IPv4 address`);
    if (!isUsableHost(subnet, given)) throw new InputError(`--address ${input.address} is outside the network ${p2pSubnet(hub)}; pick an address inside it`);
    if (used.has(given)) throw new InputError(`--address ${input.address} is already used by ${given === hubIp ? 'the hub' : `node "${nodes.find((n) => parseIPv4(n.address) === given)!.name}"`}`);
    ip = given;
  } else {
    ip = -1;
    for (let i = 2; i < 2 ** (32 - subnet.prefix) - 1; i++) {
      if (!used.has(subnet.network + i)) {
        ip = subnet.network + i;
        break;
      }
    }
    if (ip < 0) throw new InputError(`the network ${p2pSubnet(hub)} is full`);
  }
  const offset = ip - subnet.network;

  if (input.endpoint !== undefined && !/^[A-Za-z0-9.-]+:\d{1,5}$/.test(input.endpoint)) {
    throw new InputError(`--endpoint "${input.endpoint}" must be HOST:PORT (an address or a DNS name)`);
  }
  if (input.endpoint !== undefined && input.kind !== 'agent') throw new InputError('--endpoint applies to agents only (clients roam)');
  checkRoutes(input.routes ?? [], p2pSubnet(hub));

  const groups = input.groups ?? ['default'];
  checkGroups(groups);
  const proxied = parseCidr(hub.proxiedSubnet)!;
  if (input.joinValidMs !== undefined && input.kind !== 'agent') throw new InputError('--join applies to agents only (clients get config files)');
  if (input.proxied && input.kind !== 'agent') throw new InputError('--proxied applies to agents (clients always get a proxied config besides the P2P one)');
  if (input.kind === 'relay' && (input.routes?.length || input.endpoint !== undefined)) throw new InputError('a relay takes no --routes or --endpoint: it is reached at the address it registers');
  const joining = input.joinValidMs !== undefined;
  const keys = generateKeyPair();
  // A joining agent gets its token at enrolment, over the tunnel; until then it has none.
  const token = input.kind !== 'client' && !joining ? randomBytes(32).toString('base64url') : undefined;
  const node: NodeRecord = {
    name: input.name,
    kind: input.kind,
    address: formatIPv4(ip),
    proxiedAddress: input.kind === 'client' ? formatIPv4(proxied.network + offset) : null,
    // Until it enrols, a joining node is known by the code's one-time key.
    publicKey: keys.publicKey,
    privateKey: joining ? '' : keys.privateKey,
    tokenHash: token ? hashToken(token) : null,
    fixedEndpoint: input.endpoint ?? null,
    // A relay's tunnel only carries its control connection: any port will do.
    listenPort: input.kind === 'agent' ? AGENT_LISTEN_PORT : input.kind === 'client' ? CLIENT_PORT_BASE + offset : null,
    routes: input.routes ?? [],
    observedEndpoint: null,
    createdAt: new Date().toISOString(),
    enrolKey: joining ? keys.publicKey : null,
    enrolExpiresAt: joining ? Date.now() + input.joinValidMs! : null,
    enrolUsed: false,
    groups,
    proxied: input.proxied ?? false,
  };
  store.addNode(node);
  return { node, token, enrolPrivateKey: joining ? keys.privateKey : undefined };
}

function checkGroups(groups: string[]): void {
  for (const g of groups) if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(g)) throw new InputError(`group "${g}" is invalid: use lower-case letters, digits and "-"`);
  if (groups.length === 0) throw new InputError('--groups needs at least one group');
}

function checkRoutes(routes: string[], tunnel: string): void {
  const subnet = parseCidr(tunnel)!;
  for (const r of routes) {
    const c = parseCidr(r);
    if (!c || formatIPv4(c.network) !== r.split('/')[0]) throw new InputError(`route "${r}" is not a subnet like 192.168.1.0/24`);
    if (contains(subnet, c.network)) throw new InputError(`route ${r} overlaps the tunnel network ${tunnel}`);
  }
}

export interface NodeChange {
  groups?: string[];
  routes?: string[];
  proxied?: boolean;
}

/** Changes who a node may see and how it is reached; a running hub pushes the change to every agent concerned. */
export function changeNode(store: Store, name: string, change: NodeChange): NodeRecord {
  const n = store.node(name);
  if (!n) throw new InputError(`no node named "${name}" (see "wgp2p node list")`);
  if (change.groups) checkGroups(change.groups);
  if (change.routes) {
    if (n.kind !== 'agent') throw new InputError('--routes applies to agents only');
    checkRoutes(change.routes, p2pSubnet(store.hub()));
  }
  if (change.proxied !== undefined && n.kind !== 'agent') throw new InputError('--proxied applies to agents only');
  store.updateNode(name, change);
  return store.node(name)!;
}
