import { z } from 'zod';
import { HostPort } from './net/endpoint.js';
import { IpAddress } from './net/address.js';
import { Prefixed } from './net/cidr.js';
import { nodeNameSchema } from './node-name.js';
import { publicKeySchema } from './protocol.js';
import { streamConfigSchema } from './stream/config.js';
import { isKey } from './wireguard/keys.js';
import { parseJson } from './json.js';

/**
 * A join code: one line that carries what a device needs to reach the hub and prove it holds the
 * code, and what it needs to check that the hub is the right one (its public key: WireGuard's
 * handshake only completes with the matching private key). The one-time key in it is the secret;
 * the code travels out of band (copy and paste, QR), never over the network in clear.
 */

const PREFIX = 'wgp2p-join1.';

/** A string the parser accepts, kept as the text it is (the code travels as JSON). */
const checked = (parse: (text: string) => unknown) =>
  z
    .string()
    .max(300)
    .superRefine((text, ctx) => {
      try {
        parse(text);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    });

export const joinCodeSchema = z.preprocess(
  // A code from the release before IPv6 names one endpoint.
  (raw) => {
    if (raw && typeof raw === 'object' && 'hubEndpoint' in raw && !('hubEndpoints' in raw)) {
      const { hubEndpoint, ...rest } = raw as Record<string, unknown>;
      return { ...rest, hubEndpoints: [hubEndpoint] };
    }
    return raw;
  },
  z
    .object({
      /** The device makes its interface and files of it (agent/enrol.ts). */
      name: nodeNameSchema,
      hubPublicKey: publicKeySchema,
      /** Every endpoint of the hub (IPv4, IPv6, a DNS name): the device joins through the first that answers. */
      hubEndpoints: z.array(checked((t) => HostPort.parse(t))).min(1).max(2),
      /** The hub's tunnel address, where its control API listens. */
      hubAddress: checked((t) => IpAddress.parse(t)),
      apiPort: z.number().int().min(1).max(65535),
      /** One-time private key for the enrolment tunnel. */
      key: z.string().refine(isKey, { message: 'must be a WireGuard key' }),
      /** Addresses of the enrolment tunnel (with prefix). */
      address: checked((t) => Prefixed.parse(t)),
      address6: checked((t) => Prefixed.parse(t)).optional(),
      expiresAt: z.number().int(),
      /** The hub's stream side (TCP port and TLS pin), for networks that block UDP; absent: a hub without one. */
      stream: streamConfigSchema.optional(),
    })
    .strict(),
);
export type JoinCode = z.output<typeof joinCodeSchema>;

export function encodeJoinCode(c: JoinCode): string {
  return PREFIX + Buffer.from(JSON.stringify(c)).toString('base64url');
}

export function decodeJoinCode(text: string): JoinCode {
  const t = text.trim();
  if (!t.startsWith(PREFIX)) throw new Error(`this is not a wgp2p join code (it should start with "${PREFIX}")`);
  let raw: unknown;
  try {
    raw = parseJson(Buffer.from(t.slice(PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    throw new Error('the join code is damaged (not decodable); copy it again, whole');
  }
  const r = joinCodeSchema.safeParse(raw);
  if (!r.success) throw new Error(`the join code is damaged (${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}); copy it again, whole`);
  return r.data;
}
