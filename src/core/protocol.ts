import { z } from 'zod';
import { isKey } from './wireguard/keys.js';

/** Everything that crosses the hub <-> agent boundary, checked on both ends. */

export const publicKeySchema = z.string().refine(isKey, { message: 'must be a WireGuard public key (44 characters of base64)' });
export const endpointSchema = z.string().regex(/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be HOST:PORT');

export const peerInfoSchema = z.object({
  name: z.string(),
  /** Agents run wgp2p and can move to a relay; plain clients cannot. */
  kind: z.enum(['agent', 'client']),
  publicKey: publicKeySchema,
  allowedIps: z.array(z.string()),
  /** The client's endpoint as the hub sees it (null: never seen). */
  endpoint: endpointSchema.nullable(),
  /** Age of the client's last handshake with the hub, in ms (null: none yet). An age, so clocks never need to agree. */
  handshakeAgeMs: z.number().nonnegative().nullable(),
  /** The port the client's config listens on; an observed port that differs means its NAT rewrote it. */
  listenPort: z.number().int().nullable(),
});
export type PeerInfo = z.infer<typeof peerInfoSchema>;

export const agentSettingsSchema = z.object({
  /** Keepalive the agent sets toward each client peer, seconds. */
  peerKeepalive: z.number().int().min(0).max(65535),
  /** A client whose last handshake with the hub is older than this loses its keepalive. */
  staleAfterSec: z.number().int().positive(),
});
export type AgentSettings = z.infer<typeof agentSettingsSchema>;

export const hubMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('snapshot'), settings: agentSettingsSchema, peers: z.array(peerInfoSchema) }),
  z.object({ type: z.literal('peer'), peer: peerInfoSchema }),
  z.object({ type: z.literal('peer-removed'), publicKey: publicKeySchema }),
  /** Direct failed for this agent pair: reach the peer through this relay endpoint. */
  z.object({ type: z.literal('relay'), publicKey: publicKeySchema, endpoint: endpointSchema }),
]);
export type HubMessage = z.infer<typeof hubMessageSchema>;

export const PATHS = ['direct', 'trying', 'impossible', 'relaying', 'relayed', 'stale', 'unknown'] as const;
export type PathState = (typeof PATHS)[number];

export const peerReportSchema = z.object({
  publicKey: publicKeySchema,
  path: z.enum(PATHS),
  endpoint: z.string().nullable(),
  handshakeAgeMs: z.number().nonnegative().nullable(),
  rxBytes: z.number().nonnegative(),
  txBytes: z.number().nonnegative(),
  /** Milliseconds from the endpoint push to the first handshake on the new path. */
  directAfterMs: z.number().nonnegative().nullable(),
  reason: z.string().max(300).nullable(),
});
export type PeerReport = z.infer<typeof peerReportSchema>;

export const agentMessageSchema = z.discriminatedUnion('type', [z.object({ type: z.literal('report'), peers: z.array(peerReportSchema).max(100_000) })]);
export type AgentMessage = z.infer<typeof agentMessageSchema>;

/** NAME.agent.json: what an agent needs to reach its hub. Mode 0600: it holds the token. */
export const agentConfigSchema = z
  .object({
    name: z.string(),
    hubUrl: z.string().url().refine((u) => u.startsWith('http://') || u.startsWith('https://'), { message: 'must be an http(s) URL on the hub\'s tunnel address' }),
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
