import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { adminGet, listenPrivate } from '../../../src/core/admin-socket.js';

const mode = (p: string) => statSync(p).mode & 0o777;

test('an admin socket is never reachable by others, not even between listen and chmod (issue 10, low: admin sockets chmod\'ed after listen)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-sock-'));
  // A directory others may enter, and the widest umask: what the socket's own mode must make up for.
  chmodSync(dir, 0o755);
  const path = join(dir, 'hub.sock');
  writeFileSync(path, 'a stale socket of an earlier run');
  const old = process.umask(0);
  const server = createServer((_req, res) => res.end('{"ok":true}'));
  try {
    // The first moment our code can look after the bind: where the socket is, nobody else may connect.
    let atBind: { where: string; socket: number; dir: number } | undefined;
    server.once('listening', () => {
      const where = server.address() as string;
      atBind = { where, socket: mode(where), dir: mode(dirname(where)) };
    });
    await listenPrivate(server, path);
    process.umask(old);
    assert.ok(atBind, 'listening was seen');
    const othersCanConnect = (atBind.socket & 0o022) !== 0 && (atBind.dir & 0o011) !== 0;
    assert.equal(othersCanConnect, false, `at bind the socket ${atBind.where} was ${atBind.socket.toString(8)} in a ${atBind.dir.toString(8)} directory`);
    assert.equal(mode(path), 0o600, 'at its path the socket is 0600');
    assert.ok(statSync(path).isSocket(), 'the stale file was replaced');
    assert.deepEqual(await adminGet(path, '/v1/status'), { ok: true }, 'and it answers there');
  } finally {
    process.umask(old);
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});
