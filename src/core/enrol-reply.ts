import { z } from 'zod';
import { listOf } from './schema-list.js';
import { IpAddress } from './net/address.js';
import { Prefixed } from './net/cidr.js';
import { HostPort } from './net/endpoint.js';
import { nodeNameSchema } from './node-name.js';
import { allowedIpSchema, publicKeySchema } from './protocol.js';

/**
 * The hub's answer to a joining device (hub/enrol-api.ts sends it, agent/enrol.ts reads it). The
 * device writes it into a wg-quick file, an agent file named after the node, and later a systemd
 * unit, as root: every field is checked before anything is written (issue 10, finding 13).
 * Strings stay strings (the files hold text); the parsers only decide what may pass.
 */

const parsedText = (parse: (s: string) => unknown, max: number) =>
  z
    .string()
    .max(max)
    .superRefine((text, ctx) => {
      try {
        parse(text);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    });

const prefixedV = (family: 4 | 6) =>
  parsedText((s) => {
    const p = Prefixed.parse(s);
    if (p.family !== family) throw new Error(`must be an IPv${family} address with its prefix, like ${family === 4 ? '10.99.0.2/24' : 'fd3c:1a2b:3c4d::2/64'}`);
  }, 60);

/** The token goes into a JSON file and an HTTP header: what hub/enrol-api.ts makes (base64url of 32 bytes), nothing else. */
const tokenSchema = z.string().regex(/^[A-Za-z0-9_-]{32,128}$/, 'must be the agent token the hub makes (32-128 characters of base64url)');

/** http://ADDRESS:PORT on the hub's tunnel address: the agent sends its token there, so no other host and no path tricks. */
const apiUrlSchema = z
  .string()
  .max(100)
  .superRefine((text, ctx) => {
    const m = /^http:\/\/(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d{1,5})$/.exec(text);
    const host = m ? m[1].replace(/^\[|\]$/g, '') : '';
    if (!m || IpAddress.tryParse(host) === undefined || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      ctx.addIssue({ code: 'custom', message: 'must be http://ADDRESS:PORT, the control API on the hub\'s tunnel address' });
    }
  });

export const enrolReplySchema = z
  .object({
    name: nodeNameSchema,
    address: prefixedV(4),
    /** Absent from hubs of the release before IPv6. */
    address6: prefixedV(6).optional(),
    listenPort: z.number().int().min(1).max(65535).nullable(),
    token: tokenSchema,
    hub: z
      .object({
        publicKey: publicKeySchema,
        endpoints: z.array(parsedText((s) => HostPort.parse(s), 300)).min(1).max(2).optional(),
        /** Hubs of the release before IPv6 name one endpoint. */
        endpoint: parsedText((s) => HostPort.parse(s), 300).optional(),
        allowedIps: listOf(allowedIpSchema, { min: 1, max: 1000 }),
        keepalive: z.number().int().min(0).max(65535),
        apiUrl: apiUrlSchema,
      })
      .strict(),
  })
  .strict();
export type EnrolReply = z.output<typeof enrolReplySchema>;
