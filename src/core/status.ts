import { z } from 'zod';
import { KIND_IDS } from './candidates/kind.js';
import { PEER_STATES } from './paths.js';
import { PORT_MAPPING_PROTOCOLS, peerReportSchema } from './protocol.js';

/**
 * What `wgp2p status` reads from the hub's and an agent's admin sockets, as one schema: the CLI,
 * the lab's scenario driver and the tests decode it, so the JSON a script sees is the shape the
 * code checks. Everything here is plain JSON (endpoints as text).
 */

const counters = z.object({ packets: z.number(), bytes: z.number() });
const mode = z.enum(['waiting', 'no-path', 'direct', 'relay', 'hub']);

export const pairStatusSchema = z.object({
  a: z.string(),
  b: z.string(),
  mode,
  /** The path both sides confirmed: relay counts only once traffic came through it on both sides. */
  confirmed: z.boolean(),
  attempting: z.boolean(),
  /** Direct: the candidate kind; relay: the relay's address. */
  via: z.string().nullable(),
  /** Direct: the candidate kind it runs over. */
  candidate: z.enum(KIND_IDS).nullable(),
  /** The address family the pair's packets travel over (direct, or to the relay); null for a relay that bridges them. */
  family: z.union([z.literal(4), z.literal(6)]).nullable(),
  /** On a relay with one side on IPv4 and the other on IPv6 (an IPv4-only node with an IPv6-only one). */
  bridged: z.boolean(),
  relayId: z.string().nullable(),
  /** Relay: the name of the relay that carries the pair ("builtin", or a relay node's); absent from hubs before it. */
  relay: z.string().nullable().optional(),
  /** Relay: the sides whose half of the allocation rides the hub's TLS stream (the tcp-relay candidate). */
  streamSides: z.array(z.string()).optional(),
  sinceMs: z.number(),
  directAfterMs: z.number().nullable(),
  firstPathMs: z.number().nullable(),
  failures: z.number(),
  nextRetryInMs: z.number().nullable(),
  reason: z.string().nullable(),
  history: z.array(z.object({ mode, agoMs: z.number(), reason: z.string().nullable() })),
  /**
   * The relay's counters for the pair's allocation, while it has one, and the ip:port it confirmed
   * for each side (its NAT's mapping toward the relay; null until a handshake through it).
   */
  relayed: z
    .object({ aToB: counters, bToA: counters, dropped: z.record(z.string(), z.number()), relay: z.string(), latched: z.object({ a: z.string().nullable(), b: z.string().nullable() }).optional() })
    .nullable(),
});
export type PairStatusJson = z.infer<typeof pairStatusSchema>;

/**
 * A port mapping as status shows it: who granted it, where outside it forwards from, for how
 * long more. On the hub, `usable`: the external address is where the hub sees the node (a
 * mapping on an inner router of a double NAT is not).
 */
export const portMappingStatusSchema = z.object({
  protocol: z.enum(PORT_MAPPING_PROTOCOLS),
  external: z.string(),
  expiresInMs: z.number(),
  usable: z.boolean().optional(),
  /** Hub: why the hub does not use it now (it did not forward in attempts), or null. */
  problem: z.string().nullable().optional(),
});
export type PortMappingStatusJson = z.infer<typeof portMappingStatusSchema>;

/** The agent's port mapper: off (--no-port-mapping), looking, mapped, or why not. */
export const portMapperStatusSchema = z.object({
  state: z.enum(['off', 'idle', 'requesting', 'mapped', 'waiting']),
  mapping: portMappingStatusSchema.nullable(),
  gateway: z.string().nullable(),
  /** Why there is no mapping (no router answers, a refusal, a reply that was not used). */
  problem: z.string().nullable(),
  nextTryInMs: z.number().nullable(),
});
export type PortMapperStatusJson = z.infer<typeof portMapperStatusSchema>;

export const nodeStatusSchema = z.object({
  name: z.string(),
  kind: z.enum(['agent', 'client', 'relay']),
  address: z.string(),
  address6: z.string(),
  endpoint: z.string().nullable(),
  handshakeAgeMs: z.number().nullable(),
  rxBytes: z.number(),
  txBytes: z.number(),
  /** Agents: whether its control connection is up. */
  connected: z.boolean().optional(),
  /** The path to this node as each agent that serves it reports it. */
  paths: z.array(z.object({ agent: z.string(), path: z.enum(PEER_STATES), directAfterMs: z.number().nullable(), reason: z.string().nullable(), handshakeAgeMs: z.number().nullable() })).optional(),
  /** Agents: how the node reaches the hub, UDP or the TLS stream (the hub sees it on loopback), and its agent's reason. */
  transport: z.object({ transport: z.enum(['udp', 'tcp/tls']), reason: z.string().nullable() }).optional(),
  nat: z.object({ mapping: z.string(), mappingWhy: z.string(), filtering: z.string(), filteringWhy: z.string(), leaky: z.string().optional(), leakyWhy: z.string().optional(), lan: z.array(z.string()), portMapping: portMappingStatusSchema.nullable().optional() }).optional(),
});
export type NodeStatusJson = z.infer<typeof nodeStatusSchema>;

/**
 * The hub's store as the hub sees it: degraded while its writes fail (a lock held by another
 * process, a full disk, an I/O error). The hub goes on meanwhile; what waits is written when the
 * store works again.
 */
export const storeHealthSchema = z.object({
  state: z.enum(['ok', 'degraded']),
  /** Writes waiting for the store (observed endpoints, latest per node and family). */
  pendingWrites: z.number(),
  /** Failed writes in a row. */
  failures: z.number(),
  lastError: z.string().nullable(),
  failingForMs: z.number().nullable(),
});
export type StoreHealthJson = z.infer<typeof storeHealthSchema>;

export const hubStatusSchema = z.object({
  hub: z.object({
    interface: z.string(),
    device: z.string(),
    agentsConnected: z.number(),
    polls: z.number(),
    meanPollMs: z.number(),
    pushes: z.number(),
    groupsEnforced: z.boolean(),
    /** Absent from hubs before it. */
    store: storeHealthSchema.optional(),
  }).passthrough(),
  nodes: z.array(nodeStatusSchema),
  pairs: z.array(pairStatusSchema),
  /** `stream`: how nodes on a TLS stream reach it (null: they cannot; absent from hubs before relay stream sides). */
  relays: z.array(
    z.object({
      name: z.string(),
      address: z.string(),
      addresses: z.array(z.string()),
      allocations: z.number(),
      stream: z.string().nullable().optional(),
      /** A relay on its own machine: its stream side's counters (closes by reason: bad-ticket, auth-timeout, ...). */
      streamStats: z.object({ connections: z.number(), nodes: z.number(), closes: z.record(z.string(), z.number()), up: counters, down: counters, dropped: z.number() }).optional(),
    }),
  ),
});
export type HubStatusJson = z.infer<typeof hubStatusSchema>;

/**
 * How an agent reaches its hub (issue 12): UDP, or WireGuard over the hub's TLS stream, the
 * state of that choice (agent/hub-transport.ts) and why.
 */
export const hubTransportSchema = z.object({
  transport: z.enum(['udp', 'tcp/tls']),
  state: z.enum(['udp', 'trying-stream', 'stream', 'probing-udp', 'returning']),
  reason: z.string(),
  sinceMs: z.number().nullable(),
  /** The hub's stream side, host:port (null: the agent config has none). */
  relay: z.string().nullable(),
  /** The shim's connection: connecting, hello, up, down (why); null while no shim runs. */
  stream: z.string().nullable(),
  nextProbeInMs: z.number().nullable(),
  /** The current interval between UDP probes while on the stream. */
  probeEveryMs: z.number().optional(),
  /** Relay allocations whose side of this node rides the hub's stream (tcp-relay paths on the built-in relay). */
  allocations: z.number(),
  /** Streams to relays on their own machines (tcp-relay paths there, opened with the hub's tickets). */
  relayStreams: z.array(z.object({ relay: z.string(), stream: z.string(), allocations: z.number() })).optional(),
});
export type HubTransportJson = z.infer<typeof hubTransportSchema>;

export const agentStatusSchema = z.object({
  name: z.string(),
  interface: z.string(),
  hubConnected: z.boolean(),
  /** Absent from agents before port mapping. */
  portMapping: portMapperStatusSchema.optional(),
  /** Absent from agents before the stream transport. */
  hubTransport: hubTransportSchema.optional(),
  peers: z.array(peerReportSchema.extend({ name: z.string().optional(), peer: z.enum(['agent', 'client']).optional() })),
});
export type AgentStatusJson = z.output<typeof agentStatusSchema>;
