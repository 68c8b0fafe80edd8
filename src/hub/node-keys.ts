import { generateKeyPairSync } from 'node:crypto';
import type { KeyPair } from '../core/wireguard/keys.js';

/**
 * A fresh WireGuard (X25519) key pair, for the hub and the nodes it creates.
 *
 * Not core/wireguard/keys.ts's generateKeyPair, which exports JWKs from key objects: on Node
 * 20.20 that deadlocks when a garbage collection runs inside the export and finalizes an earlier
 * key-generation job (gdb on the hung process: the main thread waits on a mutex in ~KeyGenJob,
 * called from ExportJWKEdKey). A loop of calls hung within its first few iterations; the
 * 10,000-node bench hung after about 3,000 adds. Asked for DER, generateKeyPairSync encodes
 * inside the job and leaves no key object to export: 100,000 pairs in 17 s, no hang.
 */
export function newKeyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519', {
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
  });
  // X25519 SPKI is a 12-byte header + the 32-byte key, PKCS#8 a 16-byte header + the 32-byte key.
  if (publicKey.length !== 44 || privateKey.length !== 48) throw new Error(`unexpected X25519 DER lengths ${publicKey.length}/${privateKey.length}`);
  return { privateKey: privateKey.subarray(16).toString('base64'), publicKey: publicKey.subarray(12).toString('base64') };
}
