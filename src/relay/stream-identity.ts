import { existsSync } from 'node:fs';
import { generateTlsIdentity, loadTlsIdentity, writeTlsIdentity, type TlsIdentity } from '../core/stream/tls-identity.js';

/**
 * The TLS identity of a relay's stream side (`relay run`): beside its config, NAME.relay.tls.crt
 * (0644) and NAME.relay.tls.key (0600), made self-signed at the first start and kept, so its pin
 * (which the relay reports to the hub at each registration, and the hub hands to agents with
 * their tickets) stays the same across restarts. Agents never keep it: it reaches them with each
 * path command, so a relay whose key changes needs nothing but a restart.
 */

export function relayStreamFiles(configPath: string): { cert: string; key: string } {
  const base = configPath.replace(/\.json$/, '');
  return { cert: `${base}.tls.crt`, key: `${base}.tls.key` };
}

/** The identity in those files (or the operator's `own`), or a new one written there. */
export async function relayStreamIdentity(configPath: string, own?: { cert: string; key: string }): Promise<{ identity: TlsIdentity; generated: boolean; files: { cert: string; key: string } }> {
  if (own) return { identity: loadTlsIdentity(own.cert, own.key), generated: false, files: own };
  const files = relayStreamFiles(configPath);
  if (existsSync(files.cert) && existsSync(files.key)) return { identity: loadTlsIdentity(files.cert, files.key), generated: false, files };
  const identity = await generateTlsIdentity('wgp2p relay');
  writeTlsIdentity(files, identity);
  return { identity, generated: true, files };
}
