import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';

/**
 * Relay tickets (issue 12, a stream side on relays on their own machines). A relay that runs on
 * its own (`wgp2p relay run`) does not know nodes' tokens, so the hub, which does, vouches for one
 * side of one allocation: it draws a random ticket for each side that rides a stream, sends the
 * relay only the ticket's digest (bound to the allocation id and the side's key), and gives the
 * ticket to that side's agent in its relay path command. The agent presents it in its `open` on
 * the relay's TLS port (pinned, so only the relay reads it); the relay checks the digest in
 * constant time (relay/ticket-book.ts) and forwards that channel for that side only.
 *
 *   hash = base64url(SHA-256(LABEL | allocation id | 0x00 | side's public key (32 bytes) | ticket (32 bytes)))
 *
 * Binding the id and key into the digest means a ticket never matches another allocation's or
 * the other side's entry, whatever the relay compares it with. 32 random bytes make guessing
 * hopeless, so a plain hash (no salt, no KDF) is enough: the relay's memory holding digests gives
 * nobody a ticket.
 */

const LABEL = Buffer.from('wgp2p relay ticket v1\0');

/** 32 bytes of base64url without padding: a ticket, and its digest. */
export const TICKET_TEXT = /^[A-Za-z0-9_-]{43}$/;

export const ticketSchema = z.string().regex(TICKET_TEXT, 'must be 43 characters of base64url (the relay ticket from the hub\'s path command)');
export const ticketHashSchema = z.string().regex(TICKET_TEXT, 'must be 43 characters of base64url (the SHA-256 of a relay ticket)');

/**
 * A ticket must first be presented within this long of the hub's allocation (the relay counts
 * from when it allocated). The agent opens its channel as soon as the path command arrives, so
 * a minute covers a shim that has to connect first and retry a few times; a ticket nobody came
 * for lapses, and leaves no standing credential. Once presented it is good for the allocation's
 * life (a reconnecting shim presents it again), and gone with the allocation.
 */
export const TICKET_FIRST_USE_MS = 60_000;

export function newTicket(): string {
  return randomBytes(32).toString('base64url');
}

export function ticketHash(allocationId: string, publicKey: string, ticket: string): string {
  return createHash('sha256')
    .update(LABEL)
    .update(allocationId)
    .update(Buffer.of(0))
    .update(Buffer.from(publicKey, 'base64'))
    .update(Buffer.from(ticket, 'base64url'))
    .digest('base64url');
}
