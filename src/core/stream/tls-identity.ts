import { createHash, createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { run } from '../exec.js';
import { writeSecret } from '../secret-file.js';

/**
 * The TLS identity of a relay's stream side (issue 12). By default `hub init` makes a
 * self-signed certificate, and nodes learn its pin from their join code and keep it in their
 * agent config: no CA is needed, and a middlebox that intercepts TLS (or anyone else) is refused
 * because its key is not the pinned one. An operator may supply a certificate of their own
 * (`--tls-cert`, `--tls-key`): it is pinned the same way.
 *
 * The pin is the SHA-256 of the certificate's SubjectPublicKeyInfo (as RFC 7469 pins are), so a
 * certificate renewed on the same key keeps its pin; a new key needs new agent configs.
 *
 * Node can make keys but not certificates; `openssl req -x509` (OpenSSL 3, on every Debian that
 * has Node) signs one. The key is made here and reaches openssl as a 0600 file in a 0700
 * directory of our own, never in argv.
 */

export const PIN_PREFIX = 'sha256/';

export interface TlsIdentity {
  /** PEM. */
  cert: string;
  /** PEM (PKCS#8). A secret: 0600 files only, never logged. */
  key: string;
  /** `sha256/` and the base64 of the SHA-256 of the certificate's public key. */
  pin: string;
}

export class TlsIdentityError extends Error {
  override name = 'TlsIdentityError';
}

/** The pin of a certificate (PEM or DER). */
export function certificatePin(cert: string | Buffer): string {
  const x = parseCert(cert, 'the certificate');
  return spkiPin(x);
}

function spkiPin(x: X509Certificate): string {
  return PIN_PREFIX + createHash('sha256').update(x.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

function parseCert(cert: string | Buffer, what: string): X509Certificate {
  try {
    return new X509Certificate(cert);
  } catch (err) {
    throw new TlsIdentityError(`${what} is not an X.509 certificate in PEM or DER (${(err as Error).message})`);
  }
}

/** Whether `text` has the shape of a pin (the prefix and 32 bytes of base64). */
export function isPin(text: string): boolean {
  return text.startsWith(PIN_PREFIX) && Buffer.from(text.slice(PIN_PREFIX.length), 'base64').length === 32 && /^[A-Za-z0-9+/]{43}=$/.test(text.slice(PIN_PREFIX.length));
}

/** A new self-signed identity: a P-256 key, ten years (nothing checks the dates of a pinned certificate; the pin is what is trusted). */
export async function generateTlsIdentity(commonName = 'wgp2p relay'): Promise<TlsIdentity> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const key = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-tls-'));
  try {
    const keyFile = join(dir, 'key.pem');
    writeSecret(keyFile, key);
    const r = await run('openssl', ['req', '-x509', '-new', '-key', keyFile, '-subj', `/CN=${commonName.replace(/[^A-Za-z0-9 .-]/g, '')}`, '-days', '3650', '-sha256'], { allowFail: true, timeoutMs: 20_000 }).catch((err: NodeJS.ErrnoException) => {
      throw new TlsIdentityError(err.code === 'ENOENT' ? 'openssl is not installed: install it (apt install openssl), or give a certificate of your own with --tls-cert and --tls-key' : `openssl failed to start: ${err.message}`);
    });
    if (r.code !== 0) throw new TlsIdentityError(`openssl could not make the certificate (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    const cert = r.stdout;
    return { cert, key, pin: loadPair(cert, key, 'the generated certificate').pin };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An operator's certificate and key (PEM files), checked to belong together. */
export function loadTlsIdentity(certPath: string, keyPath: string): TlsIdentity {
  const read = (p: string, what: string) => {
    try {
      return readFileSync(p, 'utf8');
    } catch (err) {
      throw new TlsIdentityError(`cannot read the TLS ${what} ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const cert = read(certPath, 'certificate');
  const key = read(keyPath, 'key');
  return { cert, key, pin: loadPair(cert, key, certPath).pin };
}

/** Writes an identity where loadTlsIdentity() reads it: the key as a secret (0600), the certificate public (0644). */
export function writeTlsIdentity(files: { cert: string; key: string }, identity: TlsIdentity): void {
  writeSecret(files.key, identity.key);
  writeFileSync(files.cert, identity.cert, { mode: 0o644 });
}

function loadPair(cert: string, key: string, what: string): { pin: string } {
  const x = parseCert(cert, what);
  let k;
  try {
    k = createPrivateKey(key);
  } catch {
    throw new TlsIdentityError(`the key for ${what} is not a private key in PEM`);
  }
  if (!x.checkPrivateKey(k)) throw new TlsIdentityError(`the key does not belong to ${what}: give the key the certificate was made for`);
  return { pin: spkiPin(x) };
}

/**
 * Null when the peer's certificate on `socket` has the pinned key, else why not, in words that
 * say what to do. Called before anything is sent on the socket.
 */
export function pinProblem(socket: TLSSocket, pin: string, where: string): string | null {
  const peer = socket.getPeerX509Certificate();
  if (!peer) return `${where} sent no certificate`;
  const got = spkiPin(peer);
  if (got === pin) return null;
  return `${where} presented a certificate whose key (${got}) is not the pinned one (${pin}): something between here and the relay intercepts TLS, or the hub's certificate changed; if it did, get a fresh agent config or join code from the hub`;
}
