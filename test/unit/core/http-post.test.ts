import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { postJson } from '../../../src/core/http-post.js';

async function serve(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/enrol`, server };
}

test('posts the JSON body and reads the JSON reply with its status', async () => {
  const { url, server } = await serve((req, res) => {
    let b = '';
    req.on('data', (d: Buffer) => (b += d.toString()));
    req.on('end', () => {
      res.writeHead(b.includes('"k"') ? 403 : 200, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'this join code has expired', got: JSON.parse(b), type: req.headers['content-type'] }));
    });
  });
  try {
    const r = await postJson(url, { publicKey: 'k' }, { timeoutMs: 2000, what: 'the enrol request' });
    assert.equal(r.status, 403);
    assert.deepEqual(r.body, { error: 'this join code has expired', got: { publicKey: 'k' }, type: 'application/json' });
  } finally {
    server.close();
  }
});

test('a reply that is not JSON has no body; one over the cap, or none in time, is an error naming the request', async () => {
  const { url, server } = await serve((req, res) => {
    if (req.url === '/big') res.end('x'.repeat(5000));
    else if (req.url === '/slow') setTimeout(() => res.end('{}'), 1000);
    else res.writeHead(502).end('<html>bad gateway</html>');
  });
  const base = url.replace('/v1/enrol', '');
  try {
    assert.deepEqual(await postJson(url, {}, { timeoutMs: 2000, what: 'the enrol request' }), { status: 502, body: undefined });
    await assert.rejects(postJson(`${base}/big`, {}, { timeoutMs: 2000, maxBytes: 1000, what: 'the enrol request' }), /the enrol request: the reply from 127\.0\.0\.1:\d+ is over 1000 bytes/);
    await assert.rejects(postJson(`${base}/slow`, {}, { timeoutMs: 100, what: 'the enrol request' }), /the enrol request: no answer from 127\.0\.0\.1:\d+ within 0\.1 s/);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
