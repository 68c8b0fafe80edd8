import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

// The UAPI directory is read when the module loads: point it at a temporary one first.
const dir = mkdtempSync(join(tmpdir(), 'wgp2p-uapi-'));
process.env.WGP2P_UAPI_DIR = dir;
const { UapiConnection } = await import('../../../src/core/wireguard/uapi-connection.js');

/** A UAPI server that answers every request on a connection, as wireguard-go does, and counts connections. */
function fakeWireguardGo(ifname: string, answer: (req: string, n: number) => string | undefined): Promise<{ server: Server; connections: Socket[] }> {
  const connections: Socket[] = [];
  let n = 0;
  const server = createServer((s) => {
    connections.push(s);
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const req = buf.slice(0, end + 2);
        buf = buf.slice(end + 2);
        const a = answer(req, n++);
        if (a !== undefined) s.write(a);
      }
    });
    s.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(join(dir, `${ifname}.sock`), () => resolve({ server, connections })));
}

test('requests share one connection, one at a time, each answered in order', async () => {
  const { server, connections } = await fakeWireguardGo('keep0', (req, n) => `listen_port=${n}\n${req.startsWith('get=1') ? '' : 'x=1\n'}errno=0\n\n`);
  const c = new UapiConnection('keep0');
  try {
    const answers = await Promise.all([c.request('get=1\n\n'), c.request('get=1\n\n'), c.request('set=1\nlisten_port=1\n\n')]);
    assert.deepEqual(answers, ['listen_port=0\nerrno=0\n\n', 'listen_port=1\nerrno=0\n\n', 'listen_port=2\nx=1\nerrno=0\n\n']);
    assert.equal(connections.length, 1);
  } finally {
    c.close();
    server.close();
  }
});

test('a connection wireguard-go closed, or one that timed out, is replaced by the next request', async () => {
  let silent = false;
  const { server, connections } = await fakeWireguardGo('keep1', () => (silent ? undefined : 'errno=0\n\n'));
  const c = new UapiConnection('keep1', 100);
  try {
    await c.request('get=1\n\n');
    connections[0].destroy();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(await c.request('get=1\n\n'), 'errno=0\n\n');
    assert.equal(connections.length, 2);
    silent = true;
    await assert.rejects(c.request('get=1\n\n'), /did not answer within 100 ms/);
    silent = false;
    assert.equal(await c.request('get=1\n\n'), 'errno=0\n\n');
    assert.equal(connections.length, 3, 'the timed-out connection is not reused: a late answer would be read as the next one');
  } finally {
    c.close();
    server.close();
  }
});

test('no interface: the error names the missing socket', async () => {
  const c = new UapiConnection('nosuch0');
  await assert.rejects(c.request('get=1\n\n'), /no WireGuard interface "nosuch0" is up/);
  c.close();
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
