import { generateKeyPairSync, createPrivateKey, createPublicKey } from 'node:crypto';

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
