import { z } from 'zod';
import { endpointSchema } from '../core/net/schemas.js';
import { parseJson } from '../core/json.js';

/**
 * Datagrams of the lab's NAT probe (a tiny STUN-like protocol in JSON). They cross namespaces
 * only inside a lab, but are still parsed with a schema: a probe must never crash on a stray packet.
 */
export const probeMessageSchema = z.discriminatedUnion('op', [
  /** Answer with the source address you saw, from the socket that received this. */
  z.object({ op: z.literal('echo'), id: z.string().max(64) }),
  /** Answer from this socket ("same"), from the server's other port ("other-port"), and ask the peer server to send too ("other-addr"). */
  z.object({ op: z.literal('filter'), id: z.string().max(64) }),
  /** Server to server: send `tag` to `target` from your primary port. */
  z.object({ op: z.literal('send-to'), id: z.string().max(64), target: endpointSchema, tag: z.string().max(32) }),
  /** A reply or an unsolicited test datagram; `observed` is the source address the server saw. */
  z.object({ op: z.literal('reply'), id: z.string().max(64), tag: z.string().max(32), observed: endpointSchema.optional() }),
]);
/** Decoded: endpoints are values. */
export type ProbeMessage = z.output<typeof probeMessageSchema>;

export function decodeProbe(buf: Buffer): ProbeMessage | undefined {
  try {
    const r = probeMessageSchema.safeParse(parseJson(buf.toString('utf8')));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/** Endpoints write themselves as their text. */
export function encodeProbe(m: ProbeMessage): Buffer {
  return Buffer.from(JSON.stringify(m));
}
