import { chmodSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { request, type Server } from 'node:http';
import { dirname, join } from 'node:path';

/**
 * The local admin sockets of the hub and the agent: their mode 0600 is the access control.
 *
 * A socket is created with the process's umask (0022 usually: mode 0755, and connecting needs
 * only write permission, so anyone could have called between `listen` and a `chmod` after it).
 * So it is bound inside a fresh 0700 directory beside its path, where nobody else can reach it,
 * made 0600 there, and renamed into place: at its real path it is 0600 from the first moment.
 * Changing the umask around `listen` instead would also narrow whatever the libuv thread pool
 * creates at that moment (a directory without its x bit).
 */
export async function listenPrivate(server: Server, path: string): Promise<void> {
  const dir = mkdtempSync(join(dirname(path), '.sock-'));
  const hidden = join(dir, 's');
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(hidden, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(hidden, 0o600);
    // Replaces a stale socket of an earlier run in one step.
    renameSync(hidden, path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** GET a JSON document from a local admin socket (hub or agent). */
export function adminGet<T>(socketPath: string, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`${socketPath}${path}: HTTP ${res.statusCode}: ${body}`));
        else resolve(JSON.parse(body) as T);
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? `nothing is running at ${socketPath} (is the hub/agent running?)` : err.message)),
    );
    req.end();
  });
}
