import { z } from 'zod';
import { isPin } from './tls-identity.js';

/**
 * Where a node finds the hub's stream side and how it knows it is the hub's: the TCP port on the
 * hub's endpoints' hosts, and the pin of its TLS key. Carried in join codes (which travel out of
 * band, so the pin is as trustworthy as the hub's WireGuard key beside it) and agent configs.
 */
export const streamConfigSchema = z
  .object({
    port: z.number().int().min(1).max(65535),
    pin: z.string().refine(isPin, { message: 'must be sha256/ and the base64 of 32 bytes (the pin of the hub\'s TLS key); get a fresh config or join code from the hub' }),
  })
  .strict();
export type StreamConfig = z.output<typeof streamConfigSchema>;
