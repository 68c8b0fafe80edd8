import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentSocketPath } from '../../../src/agent/socket-path.js';
import { adminGet } from '../../../src/core/admin-socket.js';
import { agentStatusSchema, type AgentStatusJson } from '../../../src/core/status.js';
import { Scenario } from '../../../src/lab/scenario.js';
import type { TopologyInput } from '../../../src/lab/topology.js';
import { uniqueLabName, withLab } from '../helpers.js';

/** miniupnpd refuses documentation ranges as its WAN address (src/lab/upnp-reserved.ts): this lab's internet is 192.0.3.0/24. */
function symPair(name: string, upnpA: boolean, profileB: 'symmetric' | 'restricted' = 'symmetric'): TopologyInput {
  return {
    name,
    internet: { subnet: '192.0.3.0/24' },
    routers: [
      { name: 'mob1', profile: 'symmetric', wan: '192.0.3.10', lan: '192.168.10.0/24', upnp: upnpA },
      { name: 'mob2', profile: profileB, wan: '192.0.3.20', lan: '192.168.20.0/24' },
    ],
    hosts: [
      { name: 'hub', network: 'internet', address: '192.0.3.2' },
      { name: 's1', network: 'mob1', address: '192.168.10.2' },
      { name: 's2', network: 'mob2', address: '192.168.20.2' },
    ],
  };
}

async function agentStatus(s: Scenario, name: string): Promise<AgentStatusJson> {
  const n = s.nodes.get(name)!;
  // The agent's admin socket is a file in /run/wgp2p, shared by the lab's namespaces.
  return agentStatusSchema.parse(await adminGet<unknown>(agentSocketPath(n.ifname), '/v1/status'));
}

test('portmap: symmetric x symmetric goes direct when one router maps the port; the mapping is deleted on a clean exit', async (t) => {
  await withLab(symPair(uniqueLabName('portmap'), true), async (lab) => {
    const s = new Scenario(lab);
    await s.initHub();
    await s.addNode('s1', 'agent', 's1');
    await s.addNode('s2', 'agent', 's2');
    await s.startAgent('s1');
    await s.waitFor(async () => (await agentStatus(s, 's1')).portMapping?.state === 'mapped', 20_000, 's1 to get a port mapping');
    const st = await agentStatus(s, 's1');
    t.diagnostic(`s1 mapping: ${JSON.stringify(st.portMapping)}`);
    assert.equal(st.portMapping?.mapping?.protocol, 'pcp', 'miniupnpd answers PCP first');
    assert.match(st.portMapping?.mapping?.external ?? '', /^192\.0\.3\.10:\d+$/);
    const started = Date.now();
    await s.startAgent('s2');
    const pair = await s.waitPath('s1', 's2', 'direct', 20_000);
    t.diagnostic(`direct ${Date.now() - started} ms after s2 started; ${JSON.stringify({ candidate: pair.candidate, reason: pair.reason })}`);
    assert.equal(pair.candidate, 'mapped', 'two symmetric NATs: only the mapped port can be direct');
    const hub = await s.hubStatus();
    assert.match(hub.nodes.find((n) => n.name === 's1')?.nat?.portMapping?.external ?? '', /^192\.0\.3\.10:/, 'the hub shows what is mapped');

    const port = st.portMapping!.mapping!.external.split(':')[1];
    const rules = async () => (await lab.exec('mob1', 'nft', ['list', 'ruleset'])).stdout;
    assert.match(await rules(), new RegExp(`th dport ${port} dnat ip to 192\\.168\\.10\\.2`), 'the router forwards the mapped port');
    process.kill(s.nodes.get('s1')!.pid!, 'SIGTERM');
    await s.waitFor(async () => !new RegExp(`th dport ${port} dnat ip to 192\\.168\\.10\\.2`).test(await rules()), 10_000, 'the mapping to be deleted');
  });
});

test('portmap: symmetric x restricted goes direct when only the symmetric side maps its port', async (t) => {
  await withLab(symPair(uniqueLabName('portmapr'), true, 'restricted'), async (lab) => {
    const s = new Scenario(lab);
    await s.initHub();
    await s.addNode('s1', 'agent', 's1');
    await s.addNode('s2', 'agent', 's2');
    await s.startAgent('s1');
    await s.waitFor(async () => (await agentStatus(s, 's1')).portMapping?.state === 'mapped', 20_000, 's1 to get a port mapping');
    await s.startAgent('s2');
    const pair = await s.waitPath('s1', 's2', 'direct', 20_000);
    t.diagnostic(JSON.stringify({ candidate: pair.candidate, reason: pair.reason }));
    assert.equal(pair.candidate, 'mapped', "the restricted side sends to the mapped port (a punch toward the symmetric side's port cannot work)");
    const r = await lab.exec('s2', 'ping', ['-n', '-q', '-i', '0.02', '-c', '20', '-W', '1', s.nodes.get('s1')!.address], { allowFail: true });
    assert.equal(Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0), 20);
    assert.notEqual((await agentStatus(s, 's2')).portMapping?.state, 'mapped', 'the restricted router has no UPnP: only one side maps');
  });
});

test("portmap: a router that maps but does not forward: the pair is relayed, and the hub stops trying the mapping after two attempts", async (t) => {
  await withLab(symPair(uniqueLabName('portmapf'), true), async (lab) => {
    const s = new Scenario(lab);
    await s.initHub();
    await s.addNode('s1', 'agent', 's1');
    await s.addNode('s2', 'agent', 's2');
    await s.startAgent('s1');
    await s.waitFor(async () => (await agentStatus(s, 's1')).portMapping?.state === 'mapped', 20_000, 's1 to get a port mapping');
    // The router grants the mapping and then drops what comes in through it (a firewall that
    // forgot the mapping's rule); the hub's own packets are replies, not DNAT, and still pass.
    await lab.exec('mob1', 'nft', ['insert', 'rule', 'inet', 'lab', 'forward', 'iifname', 'wan', 'ct', 'status', 'dnat', 'drop']);
    await s.startAgent('s2');
    await s.waitFor(async () => /did not forward/.test((await s.hubStatus()).nodes.find((n) => n.name === 's1')?.nat?.portMapping?.problem ?? ''), 40_000, 'the hub to leave the mapping out');
    const pair = await s.waitPath('s1', 's2', 'relay', 20_000);
    const hub = await s.hubStatus();
    const pm = hub.nodes.find((n) => n.name === 's1')?.nat?.portMapping;
    t.diagnostic(JSON.stringify({ portMapping: pm, pair: { reason: pair.reason, failures: pair.failures, nextRetryInMs: pair.nextRetryInMs } }));
    assert.equal(pm?.usable, false);
    assert.match(pm?.problem ?? '', /did not forward in 2 attempts in a row; tried again in 10 min/);
    assert.ok((pair.nextRetryInMs ?? 0) > 60_000, `no more retries every few seconds: next in ${pair.nextRetryInMs} ms`);
    assert.match((await s.cli(undefined, ['status', '--dir', s.dir])).stdout, /maps 192\.0\.3\.10:\d+ \(PCP, not used: did not forward/, 'the status table says so');
  });
});

test('portmap: with --no-port-mapping nothing is mapped and the symmetric pair is relayed', async () => {
  await withLab(symPair(uniqueLabName('portmapo'), true), async (lab) => {
    const s = new Scenario(lab);
    await s.initHub();
    await s.addNode('s1', 'agent', 's1');
    await s.addNode('s2', 'agent', 's2');
    await s.startAgent('s1', { args: ['--no-port-mapping'] });
    await s.startAgent('s2');
    await s.waitPath('s1', 's2', 'relay', 20_000);
    assert.equal((await agentStatus(s, 's1')).portMapping?.state, 'off');
    assert.doesNotMatch((await lab.exec('mob1', 'nft', ['list', 'ruleset'])).stdout, /dnat to 192\.168\.10\.2/, 'no mapping at the router');
    void join;
  });
});
