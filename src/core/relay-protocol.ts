import { z } from 'zod';
import { listOf, recordOf } from './schema-list.js';
import { IpAddress, publicEndpointProblem } from './net/address.js';
import { endpointSchema, ipAddressSchema } from './net/schemas.js';
import { publicKeySchema } from './protocol.js';
import { ticketHashSchema } from './stream/ticket.js';
import { isPin } from './stream/tls-identity.js';

/**
 * Between the hub and a relay running on its own (`wgp2p relay run`), over a WebSocket inside the
 * relay's tunnel to the hub. The hub allocates; the relay never accepts work from anyone else.
 *
 * Addresses and endpoints are of either family and decode to core/net values; each message type
 * has a `…Wire` form: what a sender builds, with addresses and endpoints as their text.
 */

/**
 * Why `a` cannot be an address of a relay that nodes on other machines are told to send to, or
 * null: the rule of the hub's own endpoints (loopback, link-local, unique-local, unspecified,
 * multicast and reserved are refused; private and shared IPv4 serve the nodes that share them),
 * and an IPv4-mapped address is refused for the IPv4 address itself.
 */
export function relayAddressProblem(a: IpAddress): string | null {
  if (!a.unmapped().equals(a)) return `${a.toString()} is an IPv4-mapped IPv6 address; give the IPv4 address itself (${a.unmapped().toString()})`;
  const why = publicEndpointProblem(a);
  return why && `${a.toString()} is ${why}; give an address nodes on other machines reach the relay at`;
}

/** What is wrong with a relay's list of addresses (one or two, at most one per family, each a relay address), or null. */
export function relayAddressesProblem(addresses: readonly IpAddress[]): string | null {
  if (addresses.length === 0) return 'a relay needs an address: one, or one of each family';
  for (const f of [4, 6]) {
    const of = addresses.filter((a) => a.unmapped().family === f);
    if (of.length > 1) return `${of.map(String).join(' and ')} are both IPv${f}; a relay has at most one address per family`;
  }
  for (const a of addresses) {
    const why = relayAddressProblem(a);
    if (why) return why;
  }
  return null;
}

const relayAddresses = z
  .array(ipAddressSchema)
  .max(2)
  .superRefine((xs, ctx) => {
    // zod runs this refinement even when an item failed (that item is then not an IpAddress):
    // the item's own issue says what is wrong, so only a list of addresses is judged here.
    if (!xs.every((x) => x instanceof IpAddress)) return;
    const why = relayAddressesProblem(xs);
    if (why) ctx.addIssue({ code: 'custom', message: why });
  });

const allocationId = z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 hex digits');
const port = z.number().int().min(1).max(65535, 'must be a TCP/UDP port (1-65535)');
/**
 * A side that rides a stream to this relay's own stream side: the digest of the ticket the hub
 * gave that side's agent (core/stream/ticket.ts), and how long the relay waits for its first use.
 */
const sideTicket = z
  .object({
    hash: ticketHashSchema,
    firstUseMs: z.number().int().min(1000, 'must be at least 1000 (ms)').max(3_600_000, 'must be at most 3600000 (an hour, in ms)'),
  })
  .strict();
const side = z.object({ publicKey: publicKeySchema, ip: ipAddressSchema, ticket: sideTicket.optional() });
/**
 * A relay's stream side (`relay run`, TCP 443 unless --tcp-port or --no-tcp): its port on the
 * relay's addresses, and the pin of its TLS key, which the hub hands to agents with their tickets.
 */
export const relayStreamSchema = z
  .object({
    port,
    pin: z.string().max(100).refine(isPin, { message: "must be sha256/ and the base64 of 32 bytes (the pin of the relay's TLS key); the relay makes it at its first start" }),
  })
  .strict();
export type RelayStream = z.output<typeof relayStreamSchema>;

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
  dropped: recordOf(z.number().nonnegative(), 64),
});
export type RelayStats = z.output<typeof relayStatsSchema>;

export function toRelayStats(s: { id: string; portA: number; portB: number; a: { latched: string | null }; b: { latched: string | null }; aToB: { packets: number; bytes: number }; bToA: { packets: number; bytes: number }; dropped: object }): RelayStats {
  return { id: s.id, portA: s.portA, portB: s.portB, a: { latched: s.a.latched }, b: { latched: s.b.latched }, aToB: s.aToB, bToA: s.bToA, dropped: { ...(s.dropped as Record<string, number>) } };
}

/** A relay's stream side as `status` shows it: connections and nodes now, closes by reason (bad tickets among them), totals. */
export const relayStreamStatsSchema = z.object({
  connections: z.number().int().nonnegative(),
  nodes: z.number().int().nonnegative(),
  closes: recordOf(z.number().nonnegative(), 32),
  up: counters,
  down: counters,
  dropped: z.number().nonnegative(),
});
export type RelayStreamStats = z.output<typeof relayStreamStatsSchema>;

/**
 * First message: where nodes reach this relay (one address, or one of each family), and how many
 * allocations it can hold, and its stream side (absent: it has none, so it carries no pair with
 * a side on a stream). `address` alone is the hello of a relay from before IPv6 (one address);
 * it is read as a list of one, so such a relay keeps serving while the hub is upgraded first.
 */
const hello = z
  .object({ type: z.literal('hello'), addresses: relayAddresses.optional(), address: ipAddressSchema.optional(), portMin: port, portMax: port, stream: relayStreamSchema.optional() })
  .superRefine((h, ctx) => {
    if (h.addresses !== undefined) return;
    if (h.address === undefined) ctx.addIssue({ code: 'custom', path: ['addresses'], message: 'required: the relay\'s addresses (one, or one of each family)' });
    else if (h.address instanceof IpAddress) {
      const why = relayAddressProblem(h.address);
      if (why) ctx.addIssue({ code: 'custom', path: ['address'], message: why });
    }
  })
  .transform((h) => ({ type: h.type, addresses: h.addresses ?? (h.address ? [h.address] : []), portMin: h.portMin, portMax: h.portMax, stream: h.stream ?? null }));

export const relayToHubSchema = z.discriminatedUnion('type', [
  hello,
  z.object({ type: z.literal('allocated'), id: allocationId, portA: port, portB: port }),
  z.object({ type: z.literal('allocate-failed'), id: allocationId, error: z.string().max(300) }),
  z.object({ type: z.literal('latched'), id: allocationId, publicKey: publicKeySchema, endpoint: endpointSchema }),
  z.object({ type: z.literal('released'), id: allocationId, reason: z.enum(['idle', 'released']) }),
  z.object({ type: z.literal('stats'), allocations: listOf(relayStatsSchema, { max: 100_000 }), stream: relayStreamStatsSchema.optional() }),
]);
export type RelayToHub = z.output<typeof relayToHubSchema>;
export type RelayToHubWire = z.input<typeof relayToHubSchema>;
