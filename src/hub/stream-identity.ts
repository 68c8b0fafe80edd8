import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { decode } from '../core/protocol.js';
import type { StreamConfig } from '../core/stream/config.js';
import { certificatePin, generateTlsIdentity, loadTlsIdentity, writeTlsIdentity, type TlsIdentity } from '../core/stream/tls-identity.js';

/**
 * The hub's stream side on disk (issue 12): its TLS certificate (tls.crt, 0644) and key
 * (tls.key, 0600), made at `hub init` (self-signed, or the operator's copied in), and stream.json:
 * the TCP port, or null for a hub made with --no-tcp. Join codes and agent configs carry the
 * port and the pin; a hub made before this release has none of these files, and its nodes none.
 */

export const DEFAULT_TCP_PORT = 443;

const settingsSchema = z.object({ port: z.number().int().min(1).max(65535).nullable() }).strict();

export function hubStreamFiles(dir: string): { cert: string; key: string; settings: string } {
  return { cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key'), settings: join(dir, 'stream.json') };
}

export interface HubStreamPlan {
  identity: TlsIdentity;
  port: number | null;
  generated: boolean;
}

/** At `hub init`, before anything is written: the identity (generated, or the operator's `own` files, checked) and the port. */
export async function planHubStream(opts: { port: number | null; own?: { cert: string; key: string } }): Promise<HubStreamPlan> {
  const identity = opts.own ? loadTlsIdentity(opts.own.cert, opts.own.key) : await generateTlsIdentity('wgp2p hub');
  return { identity, port: opts.port, generated: !opts.own };
}

/** Writes what planHubStream() made into the hub's directory. */
export function writeHubStream(dir: string, plan: HubStreamPlan): { pin: string; port: number | null; generated: boolean } {
  const files = hubStreamFiles(dir);
  const id = plan.identity;
  writeTlsIdentity(files, id);
  writeFileSync(files.settings, JSON.stringify({ port: plan.port }) + '\n', { mode: 0o644 });
  return { pin: id.pin, port: plan.port, generated: plan.generated };
}

/** What nodes are told (join codes, agent configs), or undefined: a hub without a stream side. */
export function hubStreamConfig(dir: string): StreamConfig | undefined {
  const files = hubStreamFiles(dir);
  if (!existsSync(files.settings) || !existsSync(files.cert)) return undefined;
  const { port } = decode(settingsSchema, readFileSync(files.settings, 'utf8'), files.settings);
  if (port === null) return undefined;
  return { port, pin: certificatePin(readFileSync(files.cert)) };
}

/** For `hub run`: the identity and port, or undefined as above. */
export function hubStreamIdentity(dir: string): { identity: TlsIdentity; port: number } | undefined {
  const files = hubStreamFiles(dir);
  const cfg = hubStreamConfig(dir);
  return cfg && { identity: loadTlsIdentity(files.cert, files.key), port: cfg.port };
}
