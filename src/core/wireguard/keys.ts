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

export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const priv = privateKey.export({ format: 'jwk' });
  const pub = publicKey.export({ format: 'jwk' });
  return {
    privateKey: Buffer.from(priv.d!, 'base64url').toString('base64'),
    publicKey: Buffer.from(pub.x!, 'base64url').toString('base64'),
  };
}

export function publicKeyOf(privateKeyBase64: string): string {
  const d = Buffer.from(privateKeyBase64, 'base64');
  if (d.length !== 32) throw new Error('a WireGuard private key is 32 bytes of base64');
  // Node needs the public half in the JWK too; derive it through a PKCS#8 import instead.
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), d]);
  const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  const x = createPublicKey(key).export({ format: 'jwk' }).x!;
  return Buffer.from(x, 'base64url').toString('base64');
}
