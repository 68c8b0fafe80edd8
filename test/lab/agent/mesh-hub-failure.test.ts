import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Scenario } from '../../../src/lab/scenario.js';
import { behindRouters } from '../../../src/lab/topologies.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('hub failure: direct paths go on without the hub; relayed pairs resume when it returns, and direct pairs are adopted, not re-tried', async (t) => {
  await withLab(
    behindRouters(uniqueLabName('mhub'), [
      { host: 'a', router: 'home1' },
      { host: 'b', router: 'home2' },
      { host: 's1', router: 'mob1', profile: 'symmetric' },
      { host: 's2', router: 'mob2', profile: 'symmetric' },
    ]),
    async (lab) => {
      const s = new Scenario(lab);
      await s.initHub();
      await s.addNode('a', 'agent', 'a', ['--groups', 'home']);
      const b = await s.addNode('b', 'agent', 'b', ['--groups', 'home']);
      await s.addNode('s1', 'agent', 's1', ['--groups', 'mobile']);
      const s2 = await s.addNode('s2', 'agent', 's2', ['--groups', 'mobile']);
      for (const n of ['a', 'b', 's1', 's2']) await s.startAgent(n);
      await s.waitPath('a', 'b', 'direct');
      await s.waitPath('s1', 's2', 'relay');
      await msUntilPingReply(lab.ns('s1'), s2.address, 5000);

      await s.killHub();
      // While the hub is down, the direct pair keeps working, every packet of it.
      const during = await lab.exec('a', 'ping', ['-n', '-q', '-c', '40', '-i', '0.1', b.address]);
      assert.match(during.stdout, /40 received/, 'the direct path does not need the hub');

      const t0 = Date.now();
      await s.startHub();
      await s.waitPath('s1', 's2', 'relay', 20_000);
      const reply = await msUntilPingReply(lab.ns('s1'), s2.address, 10_000);
      t.diagnostic(`relayed pair answers again ${Date.now() - t0} ms after the hub restarted (ping ${reply} ms after confirmation)`);

      const ab = (await s.pair('a', 'b'))!;
      assert.equal(ab.mode, 'direct');
      assert.deepEqual(ab.history.map((h) => h.mode), ['direct'], 'the new hub adopted the direct pair');
      assert.match(ab.history[0].reason ?? '', /adopted/);
      await sleep(500);
      const after = await lab.exec('a', 'ping', ['-n', '-q', '-c', '20', '-i', '0.05', b.address]);
      assert.match(after.stdout, /20 received/);
    },
  );
});
