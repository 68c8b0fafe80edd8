import { z } from 'zod';
import { IpAddress } from './address.js';
import { Cidr, Prefixed } from './cidr.js';
import { Endpoint, HostPort } from './endpoint.js';

/**
 * Zod schemas for the network value types: a string on the wire, a parsed value after decoding.
 * The message of a refusal is the parser's own, which names what is wrong and the fix.
 */

/** `read` gives the value or the reason it is refused; it builds no Error (see IpAddress.read). */
function parsed<T>(read: (s: string) => T | string, maxLength: number) {
  return z
    .string()
    .max(maxLength)
    .transform((s, ctx): T => {
      const r = read(s);
      if (typeof r !== 'string') return r;
      ctx.addIssue({ code: 'custom', message: r });
      return z.NEVER;
    });
}

function hostPort(s: string): HostPort | string {
  try {
    return HostPort.parse(s);
  } catch (err) {
    return (err as Error).message;
  }
}

export const ipAddressSchema = parsed((s) => IpAddress.read(s), 45);
export const endpointSchema = parsed((s) => Endpoint.read(s), 60);
export const hostPortSchema = parsed(hostPort, 300);
export const cidrSchema = parsed((s) => Cidr.read(s), 60);
export const prefixedSchema = parsed((s) => Prefixed.read(s), 60);
