import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto';

/** WireGuard keys are 32-byte Curve25519 values, written as base64 in configs and as hex in the UAPI. */
export const KEY_BASE64 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$/;

export function isKey(text: string): boolean {
  return KEY_BASE64.test(text);
}

export function keyToHex(base64: string): string {
  return Buffer.from(base64, 'base64').toString('hex');
}

export function hexToKey(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

/**
 * Keys come out as DER, whose last 32 bytes are the raw key (RFC 8410), never through a JWK export
 * of a key object: on Node 20.20 a loop of generateKeyPairSync + JWK export deadlocks within a
 * few iterations (a garbage collection inside the export finalises an earlier key-generation job
 * and waits on a mutex the export holds; seen with gdb while `node add` hung at 0 % CPU).
 */
const rawKey = (der: Buffer) => der.subarray(der.length - 32).toString('base64');

export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519', { publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  return { privateKey: rawKey(privateKey), publicKey: rawKey(publicKey) };
}

/** PKCS#8 wrapping of a raw X25519 private key (RFC 8410: the OID 1.3.101.110, then the 32-byte key). */
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

export function publicKeyOf(privateKeyBase64: string): string {
  const d = Buffer.from(privateKeyBase64, 'base64');
  if (d.length !== 32) throw new Error('a WireGuard private key is 32 bytes of base64');
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, d]), format: 'der', type: 'pkcs8' });
  return rawKey(createPublicKey(key).export({ type: 'spki', format: 'der' }));
}

/** SPKI wrapping of a raw X25519 public key (RFC 8410). */
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

/**
 * A public key of small order (all zeros, one, the few points of order 8 and their aliases):
 * every private key agrees on the same shared secret with it (RFC 7748 section 6.1), so it
 * proves nothing. OpenSSL refuses to derive an all-zero secret, which is exactly this test.
 */
export function isLowOrder(publicKeyBase64: string): boolean {
  const raw = Buffer.from(publicKeyBase64, 'base64');
  if (raw.length !== 32) return true;
  try {
    // DER out, as everywhere here (see generateKeyPair): no key object of the generation job is exported.
    const der = generateKeyPairSync('x25519', { publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } }).privateKey;
    const ours = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    diffieHellman({ privateKey: ours, publicKey: createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' }) });
    return false;
  } catch {
    return true;
  }
}

/**
 * X25519 of a private and a public key, both WireGuard base64: the secret the two key pairs
 * share. Throws for a public key of small order (OpenSSL refuses the all-zero result).
 */
export function sharedSecret(privateKeyBase64: string, publicKeyBase64: string): Buffer {
  const d = Buffer.from(privateKeyBase64, 'base64');
  const p = Buffer.from(publicKeyBase64, 'base64');
  if (d.length !== 32 || p.length !== 32) throw new Error('WireGuard keys are 32 bytes of base64');
  return diffieHellman({
    privateKey: createPrivateKey({ key: Buffer.concat([PKCS8_X25519, d]), format: 'der', type: 'pkcs8' }),
    publicKey: createPublicKey({ key: Buffer.concat([SPKI_X25519, p]), format: 'der', type: 'spki' }),
  });
}
