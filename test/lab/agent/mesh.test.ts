import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Scenario } from '../../../src/lab/scenario.js';
import { behindRouters } from '../../../src/lab/topologies.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

test('mesh: agents behind home NATs go direct, behind two symmetric NATs they are relayed, groups keep others out', async (t) => {
  await withLab(
    behindRouters(uniqueLabName('mesh'), [
      { host: 'a1', router: 'home1' },
      { host: 'a2', router: 'home2' },
      { host: 's1', router: 'mob1', profile: 'symmetric' },
      { host: 's2', router: 'mob2', profile: 'symmetric' },
      { host: 'g', router: 'home3' },
    ]),
    async (lab) => {
      const s = new Scenario(lab);
      await s.initHub();
      for (const n of ['a1', 'a2', 's1', 's2']) await s.addNode(n, 'agent', n);
      await s.addNode('g', 'agent', 'g', ['--groups', 'other']);
      for (const n of ['a1', 'a2', 's1', 's2', 'g']) await s.startAgent(n);
      const node = (n: string) => s.nodes.get(n)!;
      const key = async (n: string) => s.publicKey(n);

      const direct = await msUntilPingReply(lab.ns('a1'), node('a2').address, 10_000);
      t.diagnostic(`a1 -> a2 first reply ${direct} ms after all agents were up`);
      assert.match((await s.endpointOn(node('a1').ifname, await key('a2'))) ?? '', /^203\.0\.113\.20:/, 'a1 talks to a2 at its NAT, not via the hub');

      const relayed = await msUntilPingReply(lab.ns('s1'), node('s2').address, 20_000).catch(async (err: Error) => {
        // The state that explains a relayed pair that does not answer, read before the lab goes.
        const peer = async (from: string, to: string) => {
          const p = (await (await s.device(node(from).ifname)).get()).peers.find((x) => x.publicKey === s2key(to));
          return p && { endpoint: p.endpoint?.toString(), lastHandshakeMs: p.lastHandshakeMs, rxBytes: p.rxBytes, txBytes: p.txBytes, keepalive: p.persistentKeepalive };
        };
        const keys = new Map([['s1', await key('s1')], ['s2', await key('s2')]]);
        const s2key = (n: string) => keys.get(n)!;
        const nft = await lab.exec('hub', 'nft', ['list', 'ruleset'], { allowFail: true });
        const st = await s.hubStatus();
        throw new Error(
          `${err.message}\ns1's peer s2: ${JSON.stringify(await peer('s1', 's2'))}\ns2's peer s1: ${JSON.stringify(await peer('s2', 's1'))}\n` +
            `hub pairs: ${JSON.stringify(st.pairs)}\nhub relays: ${JSON.stringify(st.relays)}\nhub nft:\n${nft.stdout}`,
        );
      });
      t.diagnostic(`s1 -> s2 first reply ${relayed} ms after the direct pair answered`);
      assert.match((await s.endpointOn(node('s1').ifname, await key('s2'))) ?? '', /^203\.0\.113\.2:52\d{3}$/, 's1 reaches s2 through the relay on the hub');
      await new Promise((res) => setTimeout(res, 1000)); // past the relay's handover to the kernel
      const r = await lab.exec('s1', 'ping', ['-n', '-q', '-c', '20', '-i', '0.02', node('s2').address]);
      // Under the whole suite's load one reply in 20 was lost once (5 agents, 2 cores); more is a fault.
      assert.ok(Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0) >= 19, r.stdout);
      await s.waitFor(async () => (await s.hubStatus()).nodes.find((n) => n.name === 's2')?.paths?.some((p) => p.agent === 's1' && p.path === 'relayed') === true, 5000, 'status to say relayed');

      // Groups: g is in another group: nobody is told about it, it is told about nobody.
      const gPeers = (await (await s.device(node('g').ifname)).get()).peers.map((p) => p.publicKey);
      assert.equal(gPeers.length, 1, 'g has only the hub as a peer');
      const gKey = await key('g');
      for (const n of ['a1', 'a2', 's1', 's2']) assert.ok(!(await (await s.device(node(n).ifname)).get()).peers.some((p) => p.publicKey === gKey), `${n} does not know g`);
    },
  );
});
