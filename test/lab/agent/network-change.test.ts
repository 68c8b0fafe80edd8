import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Scenario } from '../../../src/lab/scenario.js';
import { hubAndDevice } from '../../../src/lab/topologies.js';
import { uniqueLabName, withLab } from '../helpers.js';

test('an agent that changes network rebinds and tells the hub at once, not at its next keepalive', async (t) => {
  await withLab(
    hubAndDevice(uniqueLabName('aroam'), ['mobile']),
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
      await s.waitFor(async () => /^203\.0\.113\.20:/.test((await endpoint()) ?? ''), 5000, 'the hub to see the device on its new network');
      const ms = Date.now() - t0;
      // The agent's keepalive toward the hub is 25 s: anything near that would mean it did nothing.
      assert.ok(ms < 5000, `the hub saw the move after ${ms} ms`);
      t.diagnostic(`hub saw the agent's new endpoint ${ms} ms after the move`);
      const status = (await s.hubStatus()).nodes.find((n) => n.name === 'device');
      assert.equal(status?.connected, true, 'the control connection survived the move');
    },
  );
});
