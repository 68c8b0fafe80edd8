import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Scenario } from '../../../src/lab/scenario.js';
import { behindRouters } from '../../../src/lab/topologies.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('roaming: an agent moves from a home NAT to a symmetric one and back; the pair goes direct, relay, direct by itself, without flapping', async (t) => {
  await withLab(
    behindRouters(uniqueLabName('mroam'), [
      { host: 'laptop', router: 'home' },
      { host: 'server', router: 'office' },
    ], { empty: [{ router: 'mobile', profile: 'symmetric' }] }),
    async (lab) => {
      const s = new Scenario(lab);
      const [, server] = await s.directPair('laptop', 'server');
      await msUntilPingReply(lab.ns('laptop'), server.address, 5000);

      // Only the host moves (no rebind by the lab): the agent notices and acts on its own.
      let t0 = Date.now();
      await lab.moveHost('laptop', 'mobile', undefined, { rebind: false });
      const relayed = await s.waitPath('laptop', 'server', 'relay', 15_000);
      const toRelay = Date.now() - t0;
      const relayReply = await msUntilPingReply(lab.ns('laptop'), server.address, 10_000);
      t.diagnostic(`home -> mobile (symmetric): relayed and confirmed ${toRelay} ms after the move (${relayed.reason}); ping answered ${relayReply} ms later`);

      t0 = Date.now();
      await lab.moveHost('laptop', 'home', '192.168.10.2', { rebind: false });
      const direct = await s.waitPath('laptop', 'server', 'direct', 15_000);
      const toDirect = Date.now() - t0;
      await msUntilPingReply(lab.ns('laptop'), server.address, 5000);
      t.diagnostic(`mobile -> home: direct again ${toDirect} ms after the move`);

      // No flapping: watch a while longer, then read the pair's whole history.
      await sleep(8000);
      const final = (await s.pair('laptop', 'server'))!;
      assert.equal(final.mode, 'direct');
      assert.deepEqual(
        final.history.map((h) => h.mode),
        ['direct', 'relay', 'direct'],
        `the pair switched exactly twice: ${JSON.stringify(final.history)}`,
      );
      assert.equal(direct.mode, 'direct');
      const r = await lab.exec('laptop', 'ping', ['-n', '-q', '-c', '20', '-i', '0.05', server.address]);
      assert.match(r.stdout, /20 received/);
    },
  );
});
