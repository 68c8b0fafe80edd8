import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Scenario } from '../../../src/lab/scenario.js';
import { ispPair, natPair, type PairProfile } from '../../../src/lab/topologies.js';
import type { TopologyInput } from '../../../src/lab/topology.js';
import { uniqueLabName, withLab } from '../helpers.js';

/**
 * Routers that accept unsolicited packets on their WAN side (`restricted-leaky`, issue 11). The
 * first punch to reach one lands on the router, conntrack confirms it, and its host's packet to
 * that peer gets another public port, which the peer's NAT filters. Before the TTL-limited
 * opening packets (src/agent/punch-ttl.ts) two such agents were relayed, and a leaky x home pair
 * went direct only when the coordinator happened to pick the right order.
 *
 * What a user relies on: the pair goes direct by itself, on the first try (the hub's history has
 * no relay before direct), and its path carries pings. Speed is bench/leaky.ts's business.
 */
async function agentsGoDirect(topology: TopologyInput): Promise<void> {
  await withLab(topology, async (lab) => {
    const s = new Scenario(lab, 'relay');
    await s.initHub();
    await s.addNode('a', 'agent', 'a');
    const b = await s.addNode('b', 'agent', 'b');
    await s.startAgent('a');
    await s.startAgent('b');
    const p = await s.waitPath('a', 'b', 'direct', 15_000);
    assert.deepEqual(
      p.history.map((h) => h.mode),
      ['direct'],
      `the first attempt went direct, nothing before it: ${JSON.stringify(p.history)}`,
    );
    const r = await lab.exec('a', 'ping', ['-n', '-q', '-i', '0.02', '-c', '20', '-W', '1', b.address], { allowFail: true });
    assert.match(r.stdout, / 20 received/, 'the direct path carries traffic');
  });
}

const leaky: PairProfile = 'restricted-leaky';

/** Needs a router between the two NATs (ispPair): on natPair's single link no TTL stops between them (NOTES-leaky.md). */
test('leaky: two agents behind routers that accept unsolicited WAN input go direct on the first attempt', async () => {
  await agentsGoDirect(ispPair(uniqueLabName('leakyll'), leaky, leaky));
});

test('leaky: an agent behind a leaky router and one behind a home router go direct on the first attempt, whichever starts second', async () => {
  await agentsGoDirect(natPair(uniqueLabName('leakylr'), leaky, 'restricted'));
  await agentsGoDirect(natPair(uniqueLabName('leakyrl'), 'restricted', leaky));
});
