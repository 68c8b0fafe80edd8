import { createHmac, timingSafeEqual } from 'node:crypto';
import { sharedSecret } from '../wireguard/keys.js';

/**
 * The credential of a stream that carries a join (issue 12, "join over the stream"). A joining
 * device has no token yet; what it has is the join code, whose one-time private key is the
 * secret. The proof is an HMAC keyed with the X25519 secret of that one-time key and the hub's
 * key, over a label and both public keys:
 *
 *   proof = base64url(HMAC-SHA256(X25519(enrol, hub), LABEL | enrolPublic | hubPublic))
 *
 * The device computes it from the code (its private key, the hub's public key); the hub from its
 * own private key and the enrolment public key it stored when it made the code. Nobody else can:
 * it takes one of the two private keys, so it is exactly as strong as the code (and WireGuard's
 * handshake over the stream proves the same key again). It names no node and carries no time:
 * whether the code is still good (not used, not expired) is the hub's to check at every hello
 * (hub/join-stream.ts), and the TLS pin keeps it between the device and the hub.
 */

const LABEL = Buffer.from('wgp2p join stream v1\0');

/** 32 bytes of HMAC-SHA256 in base64url without padding. */
export const JOIN_PROOF = /^[A-Za-z0-9_-]{43}$/;

function mac(secret: Buffer, enrolPublicKey: string, hubPublicKey: string): Buffer {
  return createHmac('sha256', secret)
    .update(LABEL)
    .update(Buffer.from(enrolPublicKey, 'base64'))
    .update(Buffer.from(hubPublicKey, 'base64'))
    .digest();
}

/** The device's side: the proof from the join code's one-time private key. */
export function joinProof(enrolPrivateKey: string, enrolPublicKey: string, hubPublicKey: string): string {
  return mac(sharedSecret(enrolPrivateKey, hubPublicKey), enrolPublicKey, hubPublicKey).toString('base64url');
}

/** The hub's side: whether `proof` was made with the private key of `enrolPublicKey` (constant time). */
export function checkJoinProof(hubPrivateKey: string, hubPublicKey: string, enrolPublicKey: string, proof: string): boolean {
  if (!JOIN_PROOF.test(proof)) return false;
  let expected: Buffer;
  try {
    expected = mac(sharedSecret(hubPrivateKey, enrolPublicKey), enrolPublicKey, hubPublicKey);
  } catch {
    // A key of small order: no proof can be made for it.
    return false;
  }
  const got = Buffer.from(proof, 'base64url');
  return got.length === expected.length && timingSafeEqual(got, expected);
}
