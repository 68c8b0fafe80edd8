import { z } from 'zod';
import { decode } from '../protocol.js';
import { publicKeySchema } from '../protocol.js';
import { JOIN_PROOF } from './join-proof.js';
import { ticketSchema } from './ticket.js';

/**
 * The control messages of the stream transport (CONTROL frames of framing.ts), checked on both
 * ends. The shim speaks first: `hello` with the node's credentials, and nothing else is read
 * before the relay has answered `welcome`. Then it opens channels: each one the node's hub peer
 * or one of the node's relay allocations; DATA frames name the channel.
 */

export const STREAM_VERSION = 1;
/** The WebSocket path on the relay's TLS port. */
export const STREAM_WS_PATH = '/v1/stream';

const channelSchema = z.number().int().min(0).max(0xffff);
/** The relay's allocation ids (relay-protocol.ts). */
const allocationIdSchema = z.string().regex(/^[0-9a-f]{16}$/, 'must be 16 hex digits (a relay allocation id)');

export const streamTargetSchema = z.discriminatedUnion('kind', [
  /** The node's own hub peer: datagrams go to the hub's WireGuard port. Only a relay inside the hub has one. */
  z.object({ kind: z.literal('hub') }).strict(),
  /** The node's side of a relay allocation the hub made for it. */
  z.object({ kind: z.literal('allocation'), id: allocationIdSchema }).strict(),
]);
export type StreamTarget = z.output<typeof streamTargetSchema>;

export const shimMessageSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('hello'),
      v: z.literal(STREAM_VERSION),
      /** The node's WireGuard public key, as the hub knows it. */
      publicKey: publicKeySchema,
      /** The node's token (NAME.agent.json); the TLS certificate is pinned, so only the relay reads it. */
      token: z.string().min(32).max(200),
    })
    .strict(),
  /**
   * Instead of hello, from a device that is joining (join-proof.ts): the join code's one-time
   * public key and the proof that it holds the code. Such a stream carries only its hub peer.
   */
  z
    .object({
      type: z.literal('join'),
      v: z.literal(STREAM_VERSION),
      enrolKey: publicKeySchema,
      proof: z.string().regex(JOIN_PROOF, 'must be 43 characters of base64url (the proof made from the join code)'),
    })
    .strict(),
  /**
   * `ticket`: on a relay on its own machine (which knows no tokens), the hub's ticket for this
   * node's side of the allocation (ticket.ts). There no hello is sent: the first open's ticket
   * is the stream's credential, and every later open carries its own, for the same node.
   */
  z.object({ type: z.literal('open'), channel: channelSchema, to: streamTargetSchema, ticket: ticketSchema.optional() }).strict(),
  z.object({ type: z.literal('close'), channel: channelSchema }).strict(),
]);
export type ShimMessage = z.output<typeof shimMessageSchema>;

/** Why a channel is closed or refused, in words the agent logs as they are. */
const reasonSchema = z.string().max(300);

export const relayStreamMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('welcome') }).strict(),
  z.object({ type: z.literal('opened'), channel: channelSchema }).strict(),
  /** The channel is not (or no longer) open: the allocation is unknown or was released. */
  z.object({ type: z.literal('closed'), channel: channelSchema, reason: reasonSchema }).strict(),
  /** Sent just before the relay closes the stream. */
  z.object({ type: z.literal('error'), reason: reasonSchema }).strict(),
]);
export type RelayStreamMessage = z.output<typeof relayStreamMessageSchema>;

export function decodeShimMessage(text: string): ShimMessage {
  return decode(shimMessageSchema, text, 'stream message');
}

export function decodeRelayStreamMessage(text: string): RelayStreamMessage {
  return decode(relayStreamMessageSchema, text, 'message from relay');
}
