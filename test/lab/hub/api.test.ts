import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { HUB_TUNNEL, Scenario } from '../../../src/lab/scenario.js';
import { hubAndDevice } from '../../../src/lab/topologies.js';
import { uniqueLabName, withLab } from '../helpers.js';

/** Makes an HTTP request from inside a lab host and returns the status (or the connection error). */
async function request(s: Scenario, host: string, url: string, init: { method?: string; token?: string; body?: string }): Promise<string> {
  const script = `fetch(${JSON.stringify(url)}, { method: ${JSON.stringify(init.method ?? 'GET')}, headers: ${JSON.stringify(init.token ? { authorization: `Bearer ${init.token}` } : {})}, body: ${init.body === undefined ? 'undefined' : JSON.stringify(init.body)} })
    .then(async (r) => console.log(r.status, await r.text()), (e) => console.log('error', e.cause?.code ?? e.message))`;
  return (await s.lab.exec(host, process.execPath, ['-e', script], { timeoutMs: 10_000 })).stdout.trim();
}

test('the control API: tunnel only, token checked, bodies validated; a missing interface is named', async () => {
  await withLab(
    hubAndDevice(uniqueLabName('api')),
    async (lab) => {
      const s = new Scenario(lab);
      await s.initHub();
      await s.addNode('device', 'agent', 'device');
      await s.startAgent('device');
      const { token } = JSON.parse(readFileSync(join(s.dir, 'nodes', 'device.agent.json'), 'utf8')) as { token: string };
      const api = `http://${HUB_TUNNEL}:51821`;

      assert.match(await request(s, 'device', `${api}/v1/peers`, { token }), /^200 \{"settings"/);
      assert.match(await request(s, 'device', `${api}/v1/peers`, { token: 'x'.repeat(43) }), /^401 .*wrong token/);
      assert.match(await request(s, 'device', `${api}/v1/report`, { method: 'POST', token, body: '{"type":"report","peers":[{"publicKey":"nope"}]}' }), /^400 .*publicKey/);
      assert.match(await request(s, 'device', `${api}/v1/report`, { method: 'POST', token, body: 'not json' }), /^400 .*not JSON/);
      // From the hub's own host (not a node's tunnel address) and on its public address.
      assert.match(await request(s, 'hub', `${api}/v1/peers`, { token }), /^403 .*through the tunnel/);
      assert.match(await request(s, 'device', 'http://203.0.113.2:51821/v1/peers', { token }), /^error (ECONNREFUSED|ETIMEDOUT|UND_ERR_CONNECT_TIMEOUT)/);

      const missing = await s.cli('hub', ['hub', 'run', '--dir', s.dir, '--interface', 'nosuchwg0'], { allowFail: true });
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /WireGuard interface "nosuchwg0" does not exist/);
    },
  );
});

test('hub init refuses malformed arguments before creating anything', async () => {
  const s = { cli: (args: string[]) => import('../../../src/core/exec.js').then(({ run }) => run(process.execPath, [new URL('../../../src/cli/main.js', import.meta.url).pathname, ...args], { allowFail: true })) };
  const cases: [string[], RegExp][] = [
    [['--endpoint', 'nohost', '--address', '10.99.0.1/24'], /--endpoint.*must be HOST:PORT/],
    [['--endpoint', 'h:99999', '--address', '10.99.0.1/24'], /must be HOST:PORT/],
    [['--endpoint', 'h:51820', '--address', '10.99.0.1'], /--address.*address with a prefix/],
    [['--endpoint', 'h:51820', '--address', '10.99.0.1/24', '--proxied-subnet', '10.99.0.0/25'], /overlaps the tunnel network/],
  ];
  for (const [args, message] of cases) {
    const dir = `/tmp/wgp2p-never-${process.pid}`;
    const r = await s.cli(['hub', 'init', '--dir', dir, ...args]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, message);
    assert.equal((await import('node:fs')).existsSync(dir), false, 'nothing is created');
  }
});
