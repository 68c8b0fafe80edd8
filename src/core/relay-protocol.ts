import { z } from 'zod';
import { isIPv4 } from './ipv4.js';
import { endpointSchema, publicKeySchema } from './protocol.js';

/**
 * Between the hub and a relay running on its own (`wgp2p relay run`), over a WebSocket inside the
 * relay's tunnel to the hub. The hub allocates; the relay never accepts work from anyone else.
 */

const ipv4 = z.string().refine(isIPv4, { message: 'must be an IPv4 address' });
const allocationId = z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 hex digits');
const side = z.object({ publicKey: publicKeySchema, ip: ipv4 });

export const hubToRelaySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('allocate'), id: allocationId, a: side, b: side }),
  z.object({ type: z.literal('update-ip'), id: allocationId, publicKey: publicKeySchema, ip: ipv4 }),
  z.object({ type: z.literal('release'), id: allocationId }),
]);
export type HubToRelay = z.infer<typeof hubToRelaySchema>;

const counters = z.object({ packets: z.number().nonnegative(), bytes: z.number().nonnegative() });

/** One allocation's counters, as the hub shows them (`wgp2p status`) wherever the relay runs. */
export const relayStatsSchema = z.object({
  id: z.string().max(64),
  portA: z.number().int(),
  portB: z.number().int(),
  a: z.object({ latched: z.string().nullable() }),
  b: z.object({ latched: z.string().nullable() }),
  aToB: counters,
  bToA: counters,
  dropped: z.record(z.string(), z.number().nonnegative()),
});
export type RelayStats = z.infer<typeof relayStatsSchema>;

export function toRelayStats(s: { id: string; portA: number; portB: number; a: { latched: string | null }; b: { latched: string | null }; aToB: { packets: number; bytes: number }; bToA: { packets: number; bytes: number }; dropped: object }): RelayStats {
  return { id: s.id, portA: s.portA, portB: s.portB, a: { latched: s.a.latched }, b: { latched: s.b.latched }, aToB: s.aToB, bToA: s.bToA, dropped: { ...(s.dropped as Record<string, number>) } };
}

export const relayToHubSchema = z.discriminatedUnion('type', [
  /** First message: where nodes reach this relay, and how many allocations it can hold. */
  z.object({ type: z.literal('hello'), address: ipv4, portMin: z.number().int().min(1).max(65535), portMax: z.number().int().min(1).max(65535) }),
  z.object({ type: z.literal('allocated'), id: allocationId, portA: z.number().int().min(1).max(65535), portB: z.number().int().min(1).max(65535) }),
  z.object({ type: z.literal('allocate-failed'), id: allocationId, error: z.string().max(300) }),
  z.object({ type: z.literal('latched'), id: allocationId, publicKey: publicKeySchema, endpoint: endpointSchema }),
  z.object({ type: z.literal('released'), id: allocationId, reason: z.enum(['idle', 'released']) }),
  z.object({ type: z.literal('stats'), allocations: z.array(relayStatsSchema).max(100_000) }),
]);
export type RelayToHub = z.infer<typeof relayToHubSchema>;
