import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Scenario } from '../../src/lab/scenario.js';
import { uniqueLabName, withLab } from '../lab/helpers.js';

test('an agent that changes network rebinds and tells the hub at once, not at its next keepalive', async (t) => {
  await withLab(
    {
      name: uniqueLabName('aroam'),
      routers: [
        { name: 'home', profile: 'restricted', wan: '203.0.113.10', lan: '192.168.10.0/24' },
        { name: 'mobile', profile: 'restricted', wan: '203.0.113.40', lan: '192.168.40.0/24' },
      ],
      hosts: [
        { name: 'hub', network: 'internet', address: '203.0.113.2' },
        { name: 'device', network: 'home', address: '192.168.10.2' },
      ],
    },
    async (lab) => {
      const s = new Scenario(lab);
      await s.initHub();
      await s.addNode('device', 'agent', 'device');
      await s.startAgent('device');
      const endpoint = async () => (await s.hubStatus()).nodes.find((n) => n.name === 'device')?.endpoint;
      assert.match((await endpoint()) ?? '', /^203\.0\.113\.10:/);

      // Move without the lab's own rebind: the agent has to notice and act by itself.
      const t0 = Date.now();
      await lab.moveHost('device', 'mobile', undefined, { rebind: false });
      await s.waitFor(async () => /^203\.0\.113\.40:/.test((await endpoint()) ?? ''), 5000, 'the hub to see the device on its new network');
      const ms = Date.now() - t0;
      // The agent's keepalive toward the hub is 25 s: anything near that would mean it did nothing.
      assert.ok(ms < 5000, `the hub saw the move after ${ms} ms`);
      t.diagnostic(`hub saw the agent's new endpoint ${ms} ms after the move`);
      const status = (await s.hubStatus()).nodes.find((n) => n.name === 'device');
      assert.equal(status?.connected, true, 'the control connection survived the move');
    },
  );
});
