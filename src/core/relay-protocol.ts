import { z } from 'zod';
import { endpointSchema, ipAddressSchema } from './net/schemas.js';
import { publicKeySchema } from './protocol.js';

/**
 * Between the hub and a relay running on its own (`wgp2p relay run`), over a WebSocket inside the
 * relay's tunnel to the hub. The hub allocates; the relay never accepts work from anyone else.
 *
 * Addresses and endpoints are of either family and decode to core/net values; each message type
 * has a `…Wire` form: what a sender builds, with addresses and endpoints as their text.
 */

const allocationId = z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 hex digits');
const side = z.object({ publicKey: publicKeySchema, ip: ipAddressSchema });
const port = z.number().int().min(1).max(65535);

export const hubToRelaySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('allocate'), id: allocationId, a: side, b: side }),
  z.object({ type: z.literal('update-ip'), id: allocationId, publicKey: publicKeySchema, ip: ipAddressSchema }),
  z.object({ type: z.literal('release'), id: allocationId }),
]);
export type HubToRelay = z.output<typeof hubToRelaySchema>;
export type HubToRelayWire = z.input<typeof hubToRelaySchema>;

const counters = z.object({ packets: z.number().nonnegative(), bytes: z.number().nonnegative() });
/** A confirmed endpoint in the counters: checked, and kept as its canonical text (it is only shown). */
const latchedText = endpointSchema.transform((e) => e.toString()).nullable();

/** One allocation's counters, as the hub shows them (`wgp2p status`) wherever the relay runs. */
export const relayStatsSchema = z.object({
  id: z.string().max(64),
  portA: z.number().int(),
  portB: z.number().int(),
  a: z.object({ latched: latchedText }),
  b: z.object({ latched: latchedText }),
  aToB: counters,
  bToA: counters,
  dropped: z.record(z.string(), z.number().nonnegative()),
});
export type RelayStats = z.output<typeof relayStatsSchema>;

export function toRelayStats(s: { id: string; portA: number; portB: number; a: { latched: string | null }; b: { latched: string | null }; aToB: { packets: number; bytes: number }; bToA: { packets: number; bytes: number }; dropped: object }): RelayStats {
  return { id: s.id, portA: s.portA, portB: s.portB, a: { latched: s.a.latched }, b: { latched: s.b.latched }, aToB: s.aToB, bToA: s.bToA, dropped: { ...(s.dropped as Record<string, number>) } };
}

export const relayToHubSchema = z.discriminatedUnion('type', [
  /** First message: where nodes reach this relay, and how many allocations it can hold. */
  z.object({ type: z.literal('hello'), address: ipAddressSchema, portMin: port, portMax: port }),
  z.object({ type: z.literal('allocated'), id: allocationId, portA: port, portB: port }),
  z.object({ type: z.literal('allocate-failed'), id: allocationId, error: z.string().max(300) }),
  z.object({ type: z.literal('latched'), id: allocationId, publicKey: publicKeySchema, endpoint: endpointSchema }),
  z.object({ type: z.literal('released'), id: allocationId, reason: z.enum(['idle', 'released']) }),
  z.object({ type: z.literal('stats'), allocations: z.array(relayStatsSchema).max(100_000) }),
]);
export type RelayToHub = z.output<typeof relayToHubSchema>;
export type RelayToHubWire = z.input<typeof relayToHubSchema>;
