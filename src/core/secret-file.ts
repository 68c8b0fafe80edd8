import { chmodSync, closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Writes a file that holds a secret (a private key, a token, a join code, a QR code of either):
 * created 0600 under a temporary name in the same directory, synced, then renamed over the
 * target. So the secret is never readable by others, not even for a moment; a file that existed
 * with a wider mode ends up 0600 (writeFile's `mode` applies only to files it creates); and a
 * crash leaves the old file or the new one, never half of one.
 */
export function writeSecret(path: string, data: string | Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  // The umask may have narrowed 0600 further; never wider, but be exact.
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}
