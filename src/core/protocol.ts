import { z } from 'zod';
import { isKey } from './wireguard/keys.js';

/** Everything that crosses the hub <-> agent boundary, checked on both ends. */

export const publicKeySchema = z.string().refine(isKey, { message: 'must be a WireGuard public key (44 characters of base64)' });
export const endpointSchema = z.string().regex(/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be HOST:PORT');
const ipv4Cidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'must be an IPv4 address with prefix, like 192.168.1.2/24');

export const peerInfoSchema = z.object({
  name: z.string(),
  /** Agents run wgp2p and can move to a relay; plain clients cannot. */
  kind: z.enum(['agent', 'client']),
  publicKey: publicKeySchema,
  allowedIps: z.array(z.string()),
  /** The peer's endpoint as the hub sees it (null: never seen). */
  endpoint: endpointSchema.nullable(),
  /** Age of the peer's last handshake with the hub, in ms (null: none yet). An age, so clocks never need to agree. */
  handshakeAgeMs: z.number().nonnegative().nullable(),
  /** The port the peer's config listens on; an observed port that differs means its NAT rewrote it. */
  listenPort: z.number().int().nullable(),
});
export type PeerInfo = z.infer<typeof peerInfoSchema>;

export const agentSettingsSchema = z.object({
  /** Keepalive the agent sets toward each peer, seconds. */
  peerKeepalive: z.number().int().min(0).max(65535),
  /** A client whose last handshake with the hub is older than this loses its keepalive. */
  staleAfterSec: z.number().int().positive(),
  /** The hub's public key: the one peer an agent never manages (it only adds proxied routes to it). */
  hubPublicKey: publicKeySchema,
  /** What the hub peer routes when nothing is proxied (the node's config sets the same). */
  hubAllowedIps: z.array(z.string()).max(1000),
  /** This node chose proxied mode: every peer is reached through the hub. */
  proxied: z.boolean(),
});
export type AgentSettings = z.infer<typeof agentSettingsSchema>;

/**
 * The path the hub decided for one agent pair, sent to both sides at the same moment.
 * - attempt: get ready for a hole punch and say `ready`, sending nothing yet: re-add the peer if
 *   it has no session, point it at `endpoint` (unless there is a `relay` to keep using meanwhile).
 * - punch (same seq, once both sides are ready): make WireGuard send now (pointing at `endpoint`
 *   first when coming from the relay); report what arrives. With a `relay` to fall back to, go
 *   back to it after `holdMs` unless the direct path already answered; watch until `windowMs`.
 * - direct: the attempt succeeded on both sides; stay direct.
 * - relay: use the relay endpoint. A `relayId` different from the current one is a new allocation
 *   that has to learn our port from a fresh handshake.
 * - hub: reach the peer through the hub (one side chose proxied mode): no peer entry, its
 *   addresses are routed through the hub peer.
 */
export const pathCommandSchema = z.object({
  type: z.literal('path'),
  publicKey: publicKeySchema,
  seq: z.number().int().nonnegative(),
  mode: z.enum(['attempt', 'punch', 'direct', 'relay', 'hub']),
  endpoint: endpointSchema.nullable(),
  relay: endpointSchema.nullable(),
  relayId: z.string().max(64).nullable(),
  windowMs: z.number().int().min(0).max(60_000),
  holdMs: z.number().int().min(0).max(60_000),
});
export type PathCommand = z.infer<typeof pathCommandSchema>;

export const hubMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('snapshot'), settings: agentSettingsSchema, peers: z.array(peerInfoSchema) }),
  z.object({ type: z.literal('peer'), peer: peerInfoSchema }),
  z.object({ type: z.literal('peer-removed'), publicKey: publicKeySchema }),
  pathCommandSchema,
]);
export type HubMessage = z.infer<typeof hubMessageSchema>;

export const PATHS = ['direct', 'trying', 'impossible', 'relaying', 'relayed', 'proxied', 'stale', 'unknown'] as const;
export type PathState = (typeof PATHS)[number];

export const peerReportSchema = z.object({
  publicKey: publicKeySchema,
  path: z.enum(PATHS),
  endpoint: z.string().nullable(),
  handshakeAgeMs: z.number().nonnegative().nullable(),
  rxBytes: z.number().nonnegative(),
  txBytes: z.number().nonnegative(),
  /** Milliseconds from the endpoint push (or the attempt) to the first handshake on the new path. */
  directAfterMs: z.number().nonnegative().nullable(),
  reason: z.string().max(300).nullable(),
  /** Agent peers: the relay allocation this side is using, so a restarted hub can tell a dead one. */
  relayId: z.string().max(64).nullable().optional(),
});
export type PeerReport = z.infer<typeof peerReportSchema>;

/**
 * What an agent saw on one pair's path:
 * - ready: the attempt `seq` is prepared; the hub sends the punch once both sides are.
 * - direct-rx: WireGuard authenticated a packet from the peer at a direct (non-relay) address
 *   since the attempt `seq` began (`endpoint`: where it came from).
 * - failed: the attempt's window passed with nothing from the peer on the direct path.
 * - relay-ok: after moving to the relay, the peer's packets arrive through it.
 * - lost: the committed path (direct or relay) carried nothing from the peer for too long.
 */
export const pathEventSchema = z.object({
  type: z.literal('path-event'),
  publicKey: publicKeySchema,
  seq: z.number().int().nonnegative(),
  event: z.enum(['ready', 'direct-rx', 'failed', 'relay-ok', 'lost']),
  endpoint: endpointSchema.nullable(),
  afterMs: z.number().nonnegative().nullable(),
});
export type PathEvent = z.infer<typeof pathEventSchema>;

/** Facts about the agent's own network: its LAN addresses (candidates for peers behind the same router) and listen port. */
export const networkFactsSchema = z.object({
  listenPort: z.number().int().min(0).max(65535),
  lan: z.array(ipv4Cidr).max(64),
});
export type NetworkFacts = z.infer<typeof networkFactsSchema>;

export const agentMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('report'), peers: z.array(peerReportSchema).max(100_000) }),
  /** First message after connecting, and again after every change of this device's network. */
  z.object({ type: z.literal('hello'), network: networkFactsSchema, changed: z.boolean(), peers: z.array(peerReportSchema).max(100_000) }),
  pathEventSchema,
]);
export type AgentMessage = z.infer<typeof agentMessageSchema>;

/** NAME.agent.json: what an agent needs to reach its hub. Mode 0600: it holds the token. */
export const agentConfigSchema = z
  .object({
    name: z.string(),
    hubUrl: z
      .string()
      .url()
      .refine((u) => u.startsWith('http://') || u.startsWith('https://'), { message: "must be an http(s) URL on the hub's tunnel address" }),
    token: z.string().min(32, 'is too short; regenerate the node with "wgp2p node add"'),
    interface: z.string().max(15).optional(),
  })
  .strict();
export type AgentConfig = z.infer<typeof agentConfigSchema>;

export function decode<T>(schema: z.ZodType<T>, text: string, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${what}: not JSON`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new Error(`${what}: ${r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
  return r.data;
}
