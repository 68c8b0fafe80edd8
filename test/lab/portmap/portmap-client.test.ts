import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentSocketPath } from '../../../src/agent/socket-path.js';
import { adminGet } from '../../../src/core/admin-socket.js';
import { agentStatusSchema, type AgentStatusJson } from '../../../src/core/status.js';
import { getDevice } from '../../../src/core/wireguard/uapi.js';
import { Scenario } from '../../../src/lab/scenario.js';
import type { TopologyInput } from '../../../src/lab/topology.js';
import { uniqueLabName, withLab } from '../helpers.js';

/**
 * Seed 000 where it used to fail: the phone behind a symmetric (carrier-like) NAT, the device
 * behind a home router that maps its port. The internet is 192.0.3.0/24 because miniupnpd refuses
 * documentation ranges as its WAN address (src/lab/upnp-reserved.ts).
 */
const topology = (name: string): TopologyInput => ({
  name,
  internet: { subnet: '192.0.3.0/24' },
  routers: [
    { name: 'devhome', profile: 'restricted', wan: '192.0.3.10', lan: '192.168.10.0/24', upnp: true },
    { name: 'cafe', profile: 'symmetric', wan: '192.0.3.20', lan: '192.168.20.0/24' },
  ],
  hosts: [
    { name: 'hub', network: 'internet', address: '192.0.3.2' },
    { name: 'device', network: 'devhome', address: '192.168.10.2' },
    { name: 'client', network: 'cafe', address: '192.168.20.2' },
  ],
});

async function agentStatus(s: Scenario, name: string): Promise<AgentStatusJson> {
  return agentStatusSchema.parse(await adminGet<unknown>(agentSocketPath(s.nodes.get(name)!.ifname), '/v1/status'));
}

async function hubCarried(s: Scenario, name: string): Promise<number> {
  const key = await s.publicKey(name);
  const p = (await getDevice(s.hubIf)).peers.find((x) => x.publicKey === key)!;
  return p.rxBytes + p.txBytes;
}

test('portmap: a plain client behind a symmetric NAT reaches a device whose router maps its port, directly', async (t) => {
  await withLab(topology(uniqueLabName('portmapc')), async (lab) => {
    const s = new Scenario(lab);
    const device = await s.hubDeviceAndPhone();
    await s.waitFor(async () => (await agentStatus(s, 'device')).portMapping?.state === 'mapped', 20_000, 'the device to get a port mapping');
    const mapped = (await agentStatus(s, 'device')).portMapping!.mapping!.external;
    t.diagnostic(`device mapping: ${mapped}`);
    // The hub hears of the mapping in a hello; the config is made from what it recorded.
    await s.waitFor(async () => (await s.hubStatus()).nodes.find((n) => n.name === 'device')?.nat?.portMapping?.usable === true, 5000, 'the hub to know the mapping');

    // The client only comes up: its handshake is all the agent gets to see before it must say direct
    // (the agent used to report "impossible" until a retry window happened to catch a keepalive).
    const started = Date.now();
    await s.startClient('phone');
    const phonePath = async () => (await agentStatus(s, 'device')).peers.find((p) => p.name === 'phone');
    await s.waitFor(async () => (await phonePath())?.path === 'direct', 6000, 'the device to say direct to the phone, with the phone idle').catch(async (err: Error) => {
      throw new Error(`${err.message} (last: ${JSON.stringify(await phonePath())})`);
    });
    t.diagnostic(`the device says direct ${Date.now() - started} ms after the client's config was asked for`);
    const conf = readFileSync(join(lab.logDir, 'phone.conf'), 'utf8');
    assert.match(conf, new RegExp(`Endpoint = ${mapped.replace(/\./g, '\\.')}\\s`), "the client's config names the device's mapped endpoint");
    assert.match((await s.endpointOn(device.ifname, await s.publicKey('phone'))) ?? '', /^192\.0\.3\.20:\d+$/, 'the device talks to the cafe NAT directly');

    // Both ways, and none of it through the hub.
    const before = await hubCarried(s, 'phone');
    for (const [from, to] of [['device', s.nodes.get('phone')!.address], ['client', device.address]] as const) {
      const r = await lab.exec(from, 'ping', ['-n', '-q', '-i', '0.02', '-c', '20', '-W', '1', to], { allowFail: true });
      assert.equal(Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0), 20, `pings from the ${from}`);
    }
    const carried = (await hubCarried(s, 'phone')) - before;
    assert.ok(carried < 300, `the hub carried ${carried} bytes of the phone's traffic while 40 pings went (only keepalives expected)`);
    await s.waitFor(async () => (await s.hubStatus()).nodes.find((n) => n.name === 'phone')?.paths?.[0]?.path === 'direct', 5000, 'the hub to say direct');
  });
});
