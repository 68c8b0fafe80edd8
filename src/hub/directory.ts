import { createHash, randomBytes } from 'node:crypto';
import { IpAddress, publicEndpointProblem } from '../core/net/address.js';
import { Cidr } from '../core/net/cidr.js';
import { HostPort } from '../core/net/endpoint.js';
import { hostNumberOf, hostRange, hubHostNumber, placement, PlacementError, proxiedAddress, proxiedAddress6, tunnelSubnet } from './address-plan.js';
import { nodeNameProblem } from '../core/node-name.js';
import { generateKeyPair } from '../core/wireguard/keys.js';
import type { HubSettings, NodeDraft, NodeKind, NodeRecord } from './store/model.js';
import { StoreError, type DirectoryStore } from './store/store.js';

/**
 * Adding and changing nodes: validation happens here, before the store is touched; the store
 * allocates the address inside its write transaction. Nothing here reads every node: a name, an
 * address and a free host number are each one indexed query.
 */

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
  /** Which of the hub's endpoints the node's config names (an IPv6-only network needs the IPv6 one). */
  hubEndpoint?: string;
}

export interface AddedNode {
  node: NodeRecord;
  /** The agent's token in clear: returned once, stored only as a hash. */
  token?: string;
  /** The join code's one-time private key (it goes into the code, nowhere else). */
  enrolPrivateKey?: string;
}

/** The address a joining agent uses for its one-time tunnel: its host number in the proxied subnet (agents have no proxied address). */
export function enrolAddress(hub: HubSettings, node: NodeRecord): IpAddress {
  const a = proxiedAddress(hub, node.hostNumber);
  if (!a) throw new InputError(`the proxied subnet ${hub.proxiedSubnet} has no join-tunnel address for ${node.address}`);
  return a;
}

/** The same for IPv6: the host number in the proxied /64. */
export function enrolAddress6(hub: HubSettings, node: NodeRecord): IpAddress {
  return proxiedAddress6(hub, node.hostNumber);
}

/** One of the hub's endpoints, as `--hub-endpoint` names it. */
export function hubEndpointOf(hub: HubSettings, text: string): HostPort {
  let given: HostPort;
  try {
    given = HostPort.parse(text);
  } catch (err) {
    throw new InputError(`--hub-endpoint "${text}" must be HOST:PORT: ${(err as Error).message}`);
  }
  const match = hub.endpoints.find((e) => e.toString() === given.toString());
  if (!match) throw new InputError(`--hub-endpoint ${given} is not one of the hub's endpoints (${hub.endpoints.join(', ')}); give one of them, or add it with "wgp2p hub init --endpoint"`);
  return match;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** An agent's or relay's token: 256 random bits, given to the node once, kept only as a hash. */
function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** A new token for a node the hub gave one (files.ts halfMadeNode says when `node add` does this); the old one stops working. */
export async function reissueToken(store: DirectoryStore, name: string): Promise<{ node: NodeRecord; token: string }> {
  const token = newToken();
  return { node: await store.replaceToken(name, hashToken(token)), token };
}

/** The host number `--address` asks for, after checking it is free; the hub and other nodes are named when they hold it. */
async function requestedHost(store: DirectoryStore, hub: HubSettings, text: string): Promise<number> {
  const given = IpAddress.tryParse(text.replace(/\/32$/, ''));
  if (given === undefined || given.family !== 4) throw new InputError(`--address "${text}" is not an IPv4 address`);
  const subnet = tunnelSubnet(hub);
  if (!subnet.isUsableHost(given)) throw new InputError(`--address ${text} is outside the network ${subnet}; pick an address inside it`);
  const host = hostNumberOf(hub, given)!;
  if (host === hubHostNumber(hub)) throw new InputError(`--address ${text} is already used by the hub`);
  const holder = await store.nodeAt(host);
  if (holder) throw new InputError(`--address ${text} is already used by node "${holder.name}"`);
  return host;
}

export async function addNode(store: DirectoryStore, input: AddNodeInput): Promise<AddedNode> {
  const hub = await store.hub();
  const nameProblem = nodeNameProblem(input.name, input.kind);
  if (nameProblem) throw new InputError(`node name ${JSON.stringify(input.name)} is invalid: ${nameProblem}`);
  if (await store.node(input.name)) throw new InputError(`a node named "${input.name}" already exists; remove it first or pick another name`);
  const hostNumber = input.address !== undefined ? await requestedHost(store, hub, input.address) : undefined;

  let fixedEndpoint: HostPort | null = null;
  if (input.endpoint !== undefined) {
    try {
      fixedEndpoint = HostPort.parse(input.endpoint);
    } catch (err) {
      throw new InputError(`--endpoint "${input.endpoint}" must be HOST:PORT (an address or a DNS name): ${(err as Error).message}`);
    }
  }
  if (input.endpoint !== undefined && input.kind !== 'agent') throw new InputError('--endpoint applies to agents only (clients roam)');
  const problem = fixedEndpoint?.address && publicEndpointProblem(fixedEndpoint.address);
  if (problem) throw new InputError(`--endpoint ${fixedEndpoint} is ${problem}; give the address clients on the internet reach the agent at, or a DNS name`);
  const hubEndpoint = input.hubEndpoint !== undefined ? hubEndpointOf(hub, input.hubEndpoint) : null;
  const routes = await parseRoutes(store, input.routes ?? [], hub, input.name);

  const groups = input.groups ?? ['default'];
  checkGroups(groups);
  if (input.joinValidMs !== undefined && input.kind !== 'agent') throw new InputError('--join applies to agents only (clients get config files)');
  if (input.proxied && input.kind !== 'agent') throw new InputError('--proxied applies to agents (clients always get a proxied config besides the P2P one)');
  if (input.kind === 'relay' && (routes.length || input.endpoint !== undefined)) throw new InputError('a relay takes no --routes or --endpoint: it is reached at the address it registers');
  const joining = input.joinValidMs !== undefined;
  const keys = generateKeyPair();
  // A joining agent gets its token at enrolment, over the tunnel; until then it has none.
  const token = input.kind !== 'client' && !joining ? newToken() : undefined;
  const draft: NodeDraft = {
    name: input.name,
    kind: input.kind,
    // Until it enrols, a joining node is known by the code's one-time key.
    publicKey: keys.publicKey,
    privateKey: joining ? '' : keys.privateKey,
    tokenHash: token ? hashToken(token) : null,
    fixedEndpoint,
    hubEndpoint,
    routes,
    createdAt: new Date().toISOString(),
    enrolKey: joining ? keys.publicKey : null,
    enrolExpiresAt: joining ? Date.now() + input.joinValidMs! : null,
    enrolUsed: false,
    groups,
    proxied: input.proxied ?? false,
  };
  const place = (h: number) => {
    if (joining && !proxiedAddress(hub, h)) throw new PlacementError(`the proxied subnet ${hub.proxiedSubnet} has no join-tunnel address for host number ${h}; it must be as large as the tunnel network ${tunnelSubnet(hub)}`);
    return placement(hub, input.kind, h);
  };
  let node: NodeRecord;
  try {
    node = await store.addNode(draft, { hostNumber, ...hostRange(hub), place });
  } catch (err) {
    if (err instanceof PlacementError) throw new InputError(err.message);
    if (err instanceof StoreError && err.code === 'full') throw new InputError(`the network ${tunnelSubnet(hub)} is full`);
    // Another `node add` got there between our check and our write.
    if (err instanceof StoreError && err.code === 'conflict' && err.field === 'name') throw new InputError(`a node named "${input.name}" already exists; remove it first or pick another name`);
    if (err instanceof StoreError && err.code === 'conflict' && err.field === 'address') throw new InputError(`--address ${input.address} was taken by another node just now; pick another`);
    throw err;
  }
  return { node, token, enrolPrivateKey: joining ? keys.privateKey : undefined };
}

function checkGroups(groups: string[]): void {
  for (const g of groups) if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(g)) throw new InputError(`group "${g}" is invalid: use lower-case letters, digits and "-"`);
  if (groups.length === 0) throw new InputError('--groups needs at least one group');
}

/**
 * Routes behind an agent: subnets of either family that overlap none of the hub's own networks,
 * in either direction, and no route of another node. A route that covers the tunnel (10.0.0.0/8
 * over 10.99.0.0/24, or 0.0.0.0/0) would be one element of a group's set in the hub's filter
 * that contains other groups' members, and a route into the tunnel in hub.conf's peers: it would
 * undo group isolation for everyone. A default route meant as an exit node is a feature of its
 * own, not a route.
 */
async function parseRoutes(store: DirectoryStore, routes: string[], hub: HubSettings, self: string): Promise<Cidr[]> {
  const parsed = routes.map((r) => {
    const c = Cidr.tryParse(r);
    if (!c) throw new InputError(`route "${r}" is not a subnet like 192.168.1.0/24 or 2001:db8:1::/64`);
    if (c.prefix === 0) throw new InputError(`route ${r} is a default route: a node that carries all traffic (an exit node) is not a route; give the subnets behind it`);
    const ours: [Cidr, string][] = [
      [tunnelSubnet(hub), 'the tunnel network'],
      [hub.address6.subnet, "the tunnel's IPv6 network"],
      [hub.proxiedSubnet, 'the proxied clients\' network'],
      [hub.proxiedSubnet6, "the proxied clients' IPv6 network"],
    ];
    for (const [net, what] of ours) if (net.overlaps(c)) throw new InputError(`route ${r} overlaps ${what} ${net}; routes are subnets behind a node, outside the hub's networks`);
    return c;
  });
  parsed.forEach((c, i) => parsed.slice(i + 1).forEach((d) => {
    if (c.overlaps(d)) throw new InputError(`routes ${c} and ${d} overlap; give each subnet once`);
  }));
  for (const other of await store.routed()) {
    if (other.name === self) continue;
    for (const c of parsed) {
      const clash = other.routes.find((d) => d.overlaps(c));
      if (clash) throw new InputError(`route ${c} overlaps ${clash}, which node "${other.name}" routes already; one subnet can be behind one node`);
    }
  }
  return parsed;
}

export interface NodeChange {
  groups?: string[];
  routes?: string[];
  proxied?: boolean;
  /** One of the hub's endpoints, or null for the hub's first. */
  hubEndpoint?: string | null;
}

/** Changes who a node may see and how it is reached; a running hub pushes the change to every agent concerned. */
export async function changeNode(store: DirectoryStore, name: string, change: NodeChange): Promise<NodeRecord> {
  const n = await store.node(name);
  if (!n) throw new InputError(`no node named "${name}" (see "wgp2p node list")`);
  if (change.groups) checkGroups(change.groups);
  let routes: Cidr[] | undefined;
  if (change.routes) {
    if (n.kind !== 'agent') throw new InputError('--routes applies to agents only');
    routes = await parseRoutes(store, change.routes, await store.hub(), name);
  }
  if (change.proxied !== undefined && n.kind !== 'agent') throw new InputError('--proxied applies to agents only');
  const hubEndpoint = change.hubEndpoint === undefined ? undefined : change.hubEndpoint === null ? null : hubEndpointOf(await store.hub(), change.hubEndpoint);
  try {
    return await store.updateNode(name, { groups: change.groups, routes, proxied: change.proxied, hubEndpoint });
  } catch (err) {
    if (err instanceof StoreError && err.code === 'not-found') throw new InputError(`no node named "${name}" (see "wgp2p node list")`);
    throw err;
  }
}
