import { z } from 'zod';
import { listOf } from './schema-list.js';
import { KIND_IDS } from './candidates/kind.js';
import { isLanAddress } from './candidates/lan.js';
import { TCP_RELAY_ID } from './candidates/tcp-relay.js';
import { Cidr } from './net/cidr.js';
import { Endpoint, HostPort } from './net/endpoint.js';
import { endpointSchema as netEndpointSchema, prefixedSchema } from './net/schemas.js';
import { existingNodeNameSchema } from './node-name.js';
import { PEER_STATES } from './paths.js';
import { isKey } from './wireguard/keys.js';
import { streamConfigSchema } from './stream/config.js';
import { ticketSchema } from './stream/ticket.js';
import { isPin } from './stream/tls-identity.js';
import { parseJson } from './json.js';

/**
 * Everything that crosses the hub <-> agent boundary, checked on both ends. What the hub sends is
 * strict (an unknown field is refused, not ignored): an agent runs as root, and a hub that says
 * more than this protocol has words for is not one to follow (issue 10, finding 13).
 */

export const publicKeySchema = z.string().refine(isKey, { message: 'must be a WireGuard public key (44 characters of base64)' });

/** Agents and plain clients are told which path they are on in the same words (paths.ts). */
const kindIdSchema = z.enum(KIND_IDS);
/** AllowedIPs go into the device as UAPI lines: only a subnet may pass, never a newline. */
export const allowedIpSchema = z.string().max(60).refine((s) => Cidr.tryParse(s) !== undefined, { message: 'must be a subnet like 10.99.0.3/32 or 192.168.1.0/24' });

export const peerInfoSchema = z.object({
  name: existingNodeNameSchema,
  /** Agents run wgp2p and can move to a relay; plain clients cannot. */
  kind: z.enum(['agent', 'client']),
  publicKey: publicKeySchema,
  allowedIps: listOf(allowedIpSchema, { max: 1000 }),
  /**
   * Plain clients: the endpoint the hub sees the client at (null: never seen). Agents: always
   * null; another agent's endpoints reach an agent only as candidates in path commands.
   */
  endpoint: netEndpointSchema.nullable(),
  /** Age of the peer's last handshake with the hub, in ms (null: none yet). An age, so clocks never need to agree. */
  handshakeAgeMs: z.number().nonnegative().nullable(),
  /** The port the peer's config listens on; an observed port that differs means its NAT rewrote it. */
  listenPort: z.number().int().min(1).max(65535).nullable(),
}).strict();
export type PeerInfo = z.output<typeof peerInfoSchema>;

export const agentSettingsSchema = z.object({
  /** Keepalive the agent sets toward each peer, seconds. */
  peerKeepalive: z.number().int().min(0).max(65535),
  /** A client whose last handshake with the hub is older than this loses its keepalive. */
  staleAfterSec: z.number().int().positive(),
  /** The hub's public key: the one peer an agent never manages (it only adds proxied routes to it). */
  hubPublicKey: publicKeySchema,
  /** What the hub peer routes when nothing is proxied (the node's config sets the same). */
  hubAllowedIps: listOf(allowedIpSchema, { max: 1000 }),
  /** This node chose proxied mode: every peer is reached through the hub. */
  proxied: z.boolean(),
}).strict();
export type AgentSettings = z.output<typeof agentSettingsSchema>;

const seqSchema = z.number().int().nonnegative();
const relayIdSchema = z.string().regex(/^[0-9a-f]{1,64}$/, 'must be a relay allocation id (hex)');

/** A LAN candidate's endpoint is a LAN address (candidates/lan.ts): never loopback, multicast or the internet. */
function lanOnly(c: object, ctx: z.RefinementCtx): void {
  // zod runs this even when the endpoint already failed to parse: then it is still the raw value
  // (found by bench/fuzz.ts), and that failure is the issue already reported.
  const { kind, endpoint } = c as { kind?: string; endpoint?: unknown };
  if (kind === 'lan' && endpoint instanceof Endpoint && !isLanAddress(endpoint.address)) {
    ctx.addIssue({ code: 'custom', path: ['endpoint'], message: `${endpoint} is not a LAN address (10/8, 172.16/12, 192.168/16, 100.64/10, fe80::/10, fd00::/8); a LAN candidate must be one` });
  }
}

/** One candidate, as one side is told it: the kind, and where to send. */
export const candidateSchema = z.object({ kind: kindIdSchema, endpoint: netEndpointSchema }).strict().superRefine(lanOnly);
export type CandidateCommand = z.output<typeof candidateSchema>;

/** A committed path, as one side is told it. */
export const pathSchema = z
  .discriminatedUnion('via', [
    z.object({ via: z.literal('direct'), kind: kindIdSchema, endpoint: netEndpointSchema }).strict(),
    /** A relayId different from the current one is a new allocation that has to learn our port from a fresh handshake. */
    /**
     * kind 'tcp-relay' (candidates/tcp-relay.ts): this side of the allocation rides the hub's TLS
     * stream; the agent opens the allocation on its shim and ignores `endpoint` (the relay's
     * address, for status). Absent: plain UDP to `endpoint`.
     */
    z
      .object({
        via: z.literal('relay'),
        endpoint: netEndpointSchema,
        relayId: relayIdSchema,
        kind: z.literal(TCP_RELAY_ID).optional(),
        /** The relay's name ("builtin", or a relay node's), for status. */
        relay: z.string().max(64).optional(),
        /**
         * tcp-relay on a relay on its own machine: its stream side (address and TCP port, the pin
         * of its TLS key) and the ticket for this side of the allocation (core/stream/ticket.ts),
         * a secret. Absent: the side rides the hub's stream (the built-in relay).
         */
        stream: z.object({ endpoint: netEndpointSchema, pin: z.string().max(100).refine(isPin, { message: "must be sha256/ and the base64 of 32 bytes (the pin of the relay's TLS key)" }), ticket: ticketSchema }).strict().optional(),
      })
      .strict()
      .refine((p) => p.stream === undefined || p.kind === TCP_RELAY_ID, { path: ['stream'], message: 'only on a tcp-relay path (kind "tcp-relay")' }),
    /** One side chose proxied mode: no peer entry, the peer's addresses are routed through the hub peer. */
    z.object({ via: z.literal('hub') }).strict(),
  ])
  .superRefine(lanOnly);
export type PathCommandPath = z.output<typeof pathSchema>;

/**
 * The hub's commands for one agent pair, sent to both sides at the same moment.
 * - prepare: get ready for a hole punch on `candidate` and say `ready`, sending nothing yet:
 *   re-add the peer if it has no session, point it at the candidate (unless there is a
 *   `fallback` relay to keep using meanwhile).
 * - punch (same seq, once both sides are ready): make WireGuard send now; report what arrives.
 *   With a fallback, go back to it after `holdMs` unless the direct path already answered;
 *   watch until `windowMs`.
 * - use: the path both sides now take.
 * Commands are numbered per pair: an agent ignores one older than the last it applied.
 */
export const pathCommandSchema = z.discriminatedUnion('step', [
  z.object({
    type: z.literal('path'),
    step: z.literal('prepare'),
    publicKey: publicKeySchema,
    seq: seqSchema,
    candidate: candidateSchema,
    fallback: z.object({ endpoint: netEndpointSchema, relayId: relayIdSchema }).strict().nullable(),
    windowMs: z.number().int().min(0).max(60_000),
    holdMs: z.number().int().min(0).max(60_000),
    /**
     * Which side starts the handshake when the peer is re-added (no session): true on exactly one
     * side. The other only opens its NAT and answers (agent/attempt.ts says why). Absent (a hub
     * of an earlier release): both sides punch at once, as before.
     */
    initiates: z.boolean().optional(),
    /**
     * Send a packet toward the candidate before saying ready, whatever the role: this side's
     * router takes unsolicited WAN input, so its own packet must leave before the peer's arrives
     * (hub/pairs/initiator.ts). Absent: only the responder opens first.
     */
    openFirst: z.boolean().optional(),
  }).strict(),
  z.object({ type: z.literal('path'), step: z.literal('punch'), publicKey: publicKeySchema, seq: seqSchema }).strict(),
  z.object({ type: z.literal('path'), step: z.literal('use'), publicKey: publicKeySchema, seq: seqSchema, path: pathSchema }).strict(),
]);
export type PathCommand = z.output<typeof pathCommandSchema>;
export type PreparePathCommand = Extract<PathCommand, { step: 'prepare' }>;

export const hubMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('snapshot'), settings: agentSettingsSchema, peers: listOf(peerInfoSchema, { max: 100_000 }) }).strict(),
  z.object({ type: z.literal('peer'), peer: peerInfoSchema }).strict(),
  z.object({ type: z.literal('peer-removed'), publicKey: publicKeySchema }).strict(),
  pathCommandSchema,
  /**
   * Send one datagram from a socket of our own bound to `from` to port `port` of the hub's
   * address (the address the hub peer's endpoint has): the hub just sent an unsolicited datagram
   * to our public address at `from`, and the port ours comes from tells whether our router took
   * it (hub/wan-probe.ts). Never WireGuard's socket: Linux NAT reuses a socket's newest mapping
   * for its later flows, so a port the probe moved would stay moved for every peer.
   */
  z.object({ type: z.literal('nat-probe'), port: z.number().int().min(1).max(65535), from: z.number().int().min(1024).max(65535) }).strict(),
]);
export type HubMessage = z.output<typeof hubMessageSchema>;

export const peerReportSchema = z.object({
  publicKey: publicKeySchema,
  path: z.enum(PEER_STATES),
  /** Mesh peers on a direct path: the candidate kind it runs over. */
  kind: kindIdSchema.nullable().optional(),
  endpoint: netEndpointSchema.nullable(),
  handshakeAgeMs: z.number().nonnegative().nullable(),
  rxBytes: z.number().nonnegative(),
  txBytes: z.number().nonnegative(),
  /** Milliseconds from the endpoint push (or the attempt) to the first handshake on the new path. */
  directAfterMs: z.number().nonnegative().nullable(),
  reason: z.string().max(300).nullable(),
  /** Agent peers: the relay allocation this side is using, so a restarted hub can tell a dead one. */
  relayId: z.string().max(64).nullable().optional(),
  /** Relay paths: which relay carries it, and over what ("r1 over its stream side at 192.0.2.7:443"). */
  relay: z.string().max(200).nullable().optional(),
});
export type PeerReport = z.output<typeof peerReportSchema>;

/**
 * What an agent saw on one pair's path:
 * - ready: the attempt `seq` is prepared; the hub sends the punch once both sides are.
 * - heard: WireGuard authenticated a packet from the peer at a direct (non-relay) address that
 *   proves the attempt's candidate, since the attempt `seq` began (`endpoint`: where it came from);
 *   while relayed (seq of the relay command): the peer's packets arrive directly, worth a try.
 * - unheard: the attempt's window passed with nothing from the peer on the candidate.
 * - relay-ok: after moving to the relay, the peer's packets arrive through it.
 * - lost: the committed path (direct or relay) carried nothing from the peer for too long.
 */
export const pathEventSchema = z.discriminatedUnion('event', [
  /**
   * `opened`: this side sent a packet toward the candidate before saying ready (the responder's
   * NAT opening, or a TTL-limited one), so no packet of the peer's arrived at its NAT before one
   * of its own left. Absent (an earlier agent): not known.
   */
  z.object({ type: z.literal('path-event'), event: z.literal('ready'), publicKey: publicKeySchema, seq: seqSchema, opened: z.boolean().optional() }),
  z.object({ type: z.literal('path-event'), event: z.literal('heard'), publicKey: publicKeySchema, seq: seqSchema, endpoint: netEndpointSchema, afterMs: z.number().nonnegative().nullable() }),
  z.object({ type: z.literal('path-event'), event: z.literal('unheard'), publicKey: publicKeySchema, seq: seqSchema }),
  z.object({ type: z.literal('path-event'), event: z.literal('relay-ok'), publicKey: publicKeySchema, seq: seqSchema }),
  z.object({ type: z.literal('path-event'), event: z.literal('lost'), publicKey: publicKeySchema, seq: seqSchema }),
]);
export type PathEvent = z.output<typeof pathEventSchema>;

export const PORT_MAPPING_PROTOCOLS = ['pcp', 'natpmp', 'upnp'] as const;
export type PortMappingProtocol = (typeof PORT_MAPPING_PROTOCOLS)[number];

/**
 * A port mapping as an agent reports it: who granted it, where the router says it forwards from,
 * and for how much longer (an age, so clocks never need to agree). Only a public IPv4 endpoint
 * can be a candidate (candidates/mapped.ts); the hub also checks it is where it sees the node.
 */
export const portMappingSchema = z
  .object({
    protocol: z.enum(PORT_MAPPING_PROTOCOLS),
    external: netEndpointSchema.refine((e) => e instanceof Endpoint && e.family === 4 && e.address.isPublic(), { message: 'must be a public IPv4 endpoint: a mapping elsewhere reaches nobody outside' }),
    internalPort: z.number().int().min(1).max(65535),
    expiresInMs: z.number().int().min(0).max(7 * 24 * 3600_000),
  })
  .strict();
export type PortMappingFacts = z.output<typeof portMappingSchema>;

/**
 * Facts about the agent's own network: its interface addresses of both families with their
 * prefixes (LAN and global IPv6 candidates come from them; a public IPv4 address among them
 * means no NAT) and WireGuard's listen port.
 */
export const networkFactsSchema = z
  .object({
    listenPort: z.number().int().min(0).max(65535),
    interfaces: listOf(prefixedSchema, { max: 64 }),
    /** The port mapping this agent's router granted (agent/port-mapping/); null or absent: none. */
    portMapping: portMappingSchema.nullable().optional(),
    /**
     * The agent is still waiting for its router's first answer (PCP, NAT-PMP, UPnP): the hub holds
     * the node's first attempts for it, briefly (hub/mapping-wait.ts says why). Absent: false.
     */
    portMappingPending: z.boolean().optional(),
    /** How the agent reaches the hub (agent/hub-transport.ts) and why, for the hub's status; absent: UDP, or an agent before it. */
    hubTransport: z.object({ transport: z.enum(['udp', 'tcp/tls']), reason: z.string().max(300) }).strict().optional(),
  })
  .superRefine((f, ctx) => {
    if (f.portMapping && typeof f.portMapping === 'object' && f.portMapping.internalPort !== f.listenPort) {
      ctx.addIssue({ code: 'custom', path: ['portMapping', 'internalPort'], message: `is ${f.portMapping.internalPort}, not the listen port ${f.listenPort}: a mapping must forward to WireGuard's port` });
    }
  });
export type NetworkFacts = z.output<typeof networkFactsSchema>;

/** Hub and agents of one release speak the same protocol; a hello of another version is refused with the reason. */
export const PROTOCOL_VERSION = 2;

export const agentMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('report'), peers: listOf(peerReportSchema, { max: 100_000 }) }),
  /** First message after connecting, and again after every change of this device's network. */
  z.object({ type: z.literal('hello'), protocol: z.literal(PROTOCOL_VERSION), network: networkFactsSchema, changed: z.boolean(), peers: listOf(peerReportSchema, { max: 100_000 }) }),
  pathEventSchema,
]);
export type AgentMessage = z.output<typeof agentMessageSchema>;

/** What `ip link` and wg-quick take as an interface name (the kernel's IFNAMSIZ, no "/" or space). */
export const interfaceNameSchema = z.string().regex(/^[A-Za-z0-9_=+.-]{1,15}$/, 'must be an interface name: 1-15 letters, digits and _=+.-');

/** HOST:PORT as a person gave it (an address of either family, or a DNS name), checked and kept as text. */
const hostPortText = z
  .string()
  .max(300)
  .superRefine((text, ctx) => {
    try {
      HostPort.parse(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });

/** NAME.agent.json: what an agent needs to reach its hub. Mode 0600: it holds the token. */
export const agentConfigSchema = z
  .object({
    name: existingNodeNameSchema,
    hubUrl: z
      .string()
      .url()
      .refine((u) => u.startsWith('http://') || u.startsWith('https://'), { message: "must be an http(s) URL on the hub's tunnel address" }),
    token: z.string().min(32, 'is too short; regenerate the node with "wgp2p node add"'),
    interface: interfaceNameSchema.optional(),
    /**
     * Every endpoint of the hub, the one in the node's config first: when the hub goes quiet on
     * one (an IPv6-only network, an IPv4 outage), the agent points its hub peer at the next.
     */
    hubEndpoints: listOf(hostPortText, { min: 1, max: 2 }).optional(),
    /** The hub's stream side (TCP port on the hubEndpoints' hosts, TLS pin), for networks that block UDP. */
    stream: streamConfigSchema.optional(),
  })
  .strict();
export type AgentConfig = z.infer<typeof agentConfigSchema>;

export function decode<T>(schema: z.ZodType<T>, text: string, what: string): T {
  let raw: unknown;
  try {
    raw = parseJson(text);
  } catch (err) {
    throw new Error(`${what}: not JSON (${(err as Error).message})`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new Error(`${what}: ${r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
  return r.data;
}
