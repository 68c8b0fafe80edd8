import { z } from 'zod';
import { IpAddress } from './address.js';
import { Cidr, Prefixed } from './cidr.js';
import { Endpoint, HostPort } from './endpoint.js';

/**
 * Zod schemas for the network value types: a string on the wire, a parsed value after decoding.
 * The message of a refusal is the parser's own, which names what is wrong and the fix.
 */

function parsed<T>(parse: (s: string) => T, maxLength: number) {
  return z
    .string()
    .max(maxLength)
    .transform((s, ctx): T => {
      try {
        return parse(s);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    });
}

export const ipAddressSchema = parsed((s) => IpAddress.parse(s), 45);
export const endpointSchema = parsed((s) => Endpoint.parse(s), 60);
export const hostPortSchema = parsed((s) => HostPort.parse(s), 300);
export const cidrSchema = parsed((s) => Cidr.parse(s), 60);
export const prefixedSchema = parsed((s) => Prefixed.parse(s), 60);
