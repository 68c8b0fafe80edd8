import { timingSafeEqual } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { TICKET_TEXT, ticketHash } from '../core/stream/ticket.js';

/**
 * What a relay on its own machine knows of the hub's tickets (core/stream/ticket.ts): per
 * allocation, each stream side's key and its ticket's digest, and until when it must first be
 * presented. It never holds a ticket itself.
 */

export type TicketVerdict =
  | { readonly ok: true; readonly publicKey: string }
  /** unknown: no ticket for this allocation (never issued, or released); wrong: matches no side (another allocation's, another side's when the side is named, or made up); expired: never presented in time. */
  | { readonly ok: false; readonly reason: 'unknown' | 'wrong' | 'expired' };

interface Entry {
  readonly publicKey: string;
  readonly hash: Buffer;
  /** Until then it may first be presented; after its first use it lasts as long as the allocation. */
  readonly firstUseBy: number;
  used: boolean;
}

export class TicketBook {
  private readonly byAllocation = new Map<string, Entry[]>();

  constructor(private readonly clock: Clock) {}

  /** The hub issued a ticket for `publicKey`'s side of `id` (its digest, and how long it waits for first use). */
  add(id: string, publicKey: string, hash: string, firstUseMs: number): void {
    const entries = (this.byAllocation.get(id) ?? []).filter((e) => e.publicKey !== publicKey);
    entries.push({ publicKey, hash: Buffer.from(hash, 'base64url'), firstUseBy: this.clock.now() + firstUseMs, used: false });
    this.byAllocation.set(id, entries);
  }

  /**
   * Which side of `id` the ticket is for, or why none. `publicKey`: the stream already speaks for
   * that node, and only its side is compared. Every entry is compared in full (constant time per
   * digest), so the answer's timing says nothing about which side, or how much, matched.
   */
  verify(id: string, ticket: string, publicKey?: string): TicketVerdict {
    const entries = this.byAllocation.get(id);
    if (!entries) return { ok: false, reason: 'unknown' };
    if (!TICKET_TEXT.test(ticket)) return { ok: false, reason: 'wrong' };
    let found: Entry | undefined;
    for (const e of entries) {
      const got = Buffer.from(ticketHash(id, e.publicKey, ticket), 'base64url');
      if (got.length === e.hash.length && timingSafeEqual(got, e.hash) && (publicKey === undefined || publicKey === e.publicKey)) found = e;
    }
    if (!found) return { ok: false, reason: 'wrong' };
    if (!found.used && this.clock.now() > found.firstUseBy) return { ok: false, reason: 'expired' };
    found.used = true;
    return { ok: true, publicKey: found.publicKey };
  }

  release(id: string): void {
    this.byAllocation.delete(id);
  }

  get size(): number {
    return this.byAllocation.size;
  }

  clear(): void {
    this.byAllocation.clear();
  }
}
