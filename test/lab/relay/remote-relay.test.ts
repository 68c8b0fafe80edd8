import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { Scenario } from '../../../src/lab/scenario.js';
import { behindRouters } from '../../../src/lab/topologies.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

test('relays on their own machines: they register with the hub, pairs spread over them, and a pair moves when its relay dies', async (t) => {
  await withLab(
    behindRouters(
      uniqueLabName('rrel'),
      [1, 2, 3, 4].map((i) => ({ host: `s${i}`, router: `mob${i}`, profile: 'symmetric' as const })),
      { publicHosts: ['r1', 'r2'] },
    ),
    async (lab) => {
      const s = new Scenario(lab);
      s.hubRunArgs = ['--no-relay'];
      await s.initHub();
      const rly1 = await s.startRelay('rly1', 'r1');
      await s.startRelay('rly2', 'r2');
      for (const [n, g] of [['s1', 'p1'], ['s2', 'p1'], ['s3', 'p2'], ['s4', 'p2']]) await s.addNode(n, 'agent', n, ['--groups', g]);
      for (const n of ['s1', 's2', 's3', 's4']) await s.startAgent(n);
      const key = (n: string) => s.publicKey(n);
      const via = async (x: string, y: string) => (await s.endpointOn(s.nodes.get(x)!.ifname, await key(y))) ?? '';
      /** The relay machine an endpoint points at. */
      const host = (endpoint: string) => Endpoint.tryParse(endpoint)?.address.toString();

      await s.waitPath('s1', 's2', 'relay');
      await s.waitPath('s3', 's4', 'relay');
      const e12 = await via('s1', 's2');
      const e34 = await via('s3', 's4');
      t.diagnostic(`s1-s2 via ${e12}, s3-s4 via ${e34}`);
      assert.match(e12, /^203\.0\.113\.[34]:530\d\d$/, 'relayed by one of the two relay machines, not by the hub');
      assert.match(e34, /^203\.0\.113\.[34]:530\d\d$/);
      assert.notEqual(host(e12), host(e34), 'the two pairs went to different relays');
      await msUntilPingReply(lab.ns('s1'), s.nodes.get('s2')!.address, 5000);
      await msUntilPingReply(lab.ns('s3'), s.nodes.get('s4')!.address, 5000);

      // The relay carrying s1-s2 dies: the pair moves to the other one.
      const victim = host(e12) === '203.0.113.3' ? rly1 : s.nodes.get('rly2')!;
      process.kill(victim.pid!, 'SIGKILL');
      const t0 = Date.now();
      await s.waitFor(async () => host(await via('s1', 's2')) !== host(e12) && (await s.pair('s1', 's2'))?.confirmed === true, 15_000, 's1-s2 to move to the other relay');
      const reply = await msUntilPingReply(lab.ns('s1'), s.nodes.get('s2')!.address, 10_000);
      t.diagnostic(`s1-s2 moved to ${await via('s1', 's2')} and answered ${Date.now() - t0} ms after its relay died (ping: ${reply} ms)`);
      assert.equal((await s.hubStatus()).relays?.length, 1, 'the dead relay left the pool');
    },
  );
});
