import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Scenario } from '../../../src/lab/scenario.js';
import type { TopologyInput } from '../../../src/lab/topology.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

const home = (name: string, profile: string, i: number) => ({ name, profile: profile as 'restricted', wan: `203.0.113.${10 * i}`, lan: `192.168.${10 * i}.0/24` });

/** seed 000 with restricted NATs on both sides, plus a laptop for the node added while running. */
const seed = (name: string, deviceProfile = 'restricted'): TopologyInput => ({
  name,
  routers: [home('devhome', deviceProfile, 1), home('cafe', 'restricted', 2), home('office', 'restricted', 3)],
  hosts: [
    { name: 'hub', network: 'internet', address: '203.0.113.2' },
    { name: 'device', network: 'devhome', address: '192.168.10.2' },
    { name: 'client', network: 'cafe', address: '192.168.20.2' },
    { name: 'laptop', network: 'office', address: '192.168.30.2' },
  ],
});

async function ping(s: Scenario, host: string, target: string, count: number): Promise<number> {
  const r = await s.lab.exec(host, 'ping', ['-n', '-q', '-i', '0.02', '-c', String(count), '-W', '1', target], { allowFail: true });
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
}

/**
 * What the hub may carry of the phone's traffic in `ms` while its pings go direct: the client's
 * keepalive to the hub (32 bytes a second) and a handshake. 50 pings through the hub would be
 * 12.8 KB. Time-based because under TCG the 50 pings took 20 s, not 1 s (736 bytes, measured).
 */
const keepalivesIn = (ms: number) => 300 + 32 * Math.ceil(ms / 1000);

async function hubCounters(s: Scenario, name: string): Promise<number> {
  const key = await s.publicKey(name);
  const p = (await (await s.device(s.hubIf)).get()).peers.find((x) => x.publicKey === key)!;
  return p.rxBytes + p.txBytes;
}

test('seed 000, home NATs both sides: direct, roams, survives the hub, takes new nodes live', async () => {
  await withLab(seed(uniqueLabName('p2p')), async (lab) => {
    const s = new Scenario(lab);
    const device = await s.hubDeviceAndPhone();
    const phoneKey = await s.publicKey('phone');
    // The hub reads its device every 20-250 ms: on either data plane without a process per read
    // (wireguard-go over its UAPI socket, the kernel module over generic netlink, not wg(8)).
    assert.equal((await s.hubStatus()).hub.device, lab.dataPlane === 'kernel' ? 'netlink' : 'uapi', `how the hub reads its ${lab.dataPlane} device`);

    // 1. Direct: the device sees the client's NAT address, and the hub carries none of the pings.
    await s.startClient('phone', { pingTarget: device.address });
    assert.match((await s.endpointOn(device.ifname, phoneKey)) ?? '', /^203\.0\.113\.20:\d+$/, 'the device talks to the cafe NAT directly');
    const t1 = performance.now();
    const before = await hubCounters(s, 'phone');
    assert.equal(await ping(s, 'client', device.address, 50), 50);
    const carried = (await hubCounters(s, 'phone')) - before;
    const took = performance.now() - t1;
    assert.ok(carried < keepalivesIn(took), `the hub carried ${carried} bytes of the phone's traffic while it sent 50 pings in ${Math.round(took)} ms (only keepalives expected: < ${keepalivesIn(took)})`);
    await s.waitFor(async () => (await s.hubStatus()).nodes.find((n) => n.name === 'phone')?.paths?.[0]?.path === 'direct', 5000, 'status to say direct');

    // 2. The client roams to another network and is direct again.
    await lab.moveHost('client', 'office');
    await msUntilPingReply(lab.ns('client'), device.address, 10_000);
    await s.waitFor(async () => /^203\.0\.113\.30:/.test((await s.endpointOn(device.ifname, phoneKey)) ?? ''), 5000, 'the device to follow the roam');
    const t2 = performance.now();
    const beforeRoam = await hubCounters(s, 'phone');
    assert.equal(await ping(s, 'client', device.address, 20), 20);
    const carriedAfterRoam = (await hubCounters(s, 'phone')) - beforeRoam;
    assert.ok(carriedAfterRoam < keepalivesIn(performance.now() - t2), `still direct after the roam (the hub carried ${carriedAfterRoam} bytes)`);

    // 3. Kill the hub: the direct tunnel goes on. Restart it: the agent resyncs, nothing is lost.
    await s.killHub();
    assert.equal(await ping(s, 'client', device.address, 30), 30, 'pings go on without the hub');
    await s.startHub();
    await s.waitFor(async () => (await s.hubStatus()).nodes.some((n) => n.name === 'device' && n.connected === true), 15_000, 'the agent to reconnect');
    const nodes = (await s.hubStatus()).nodes.map((n) => n.name).sort();
    assert.deepEqual(nodes, ['device', 'phone']);
    assert.equal(await ping(s, 'client', device.address, 10), 10);

    // 4. A node added while everything runs is usable without restarting anything.
    await s.addNode('laptop', 'client', 'laptop');
    await s.startClient('laptop', { pingTarget: device.address });
    const laptopKey = await s.publicKey('laptop');
    assert.match((await s.endpointOn(device.ifname, laptopKey)) ?? '', /^203\.0\.113\.30:\d+$/);
  });
});

test('a client behind a symmetric NAT: status says direct is impossible, and the proxied config works', async () => {
  const t = seed(uniqueLabName('sym'));
  t.routers![1] = home('cafe', 'symmetric', 2);
  await withLab(t, async (lab) => {
    const s = new Scenario(lab);
    const device = await s.hubDeviceAndPhone();
    await s.startClient('phone');
    await s.waitFor(async () => (await s.hubStatus()).nodes.find((n) => n.name === 'phone')?.paths?.[0]?.path === 'impossible', 10_000, 'the agent to give up on direct');
    const human = (await s.cli(undefined, ['status', '--dir', s.dir])).stdout;
    assert.match(human, /direct impossible from this network \(.*symmetric.*\); use phone\.proxied\.conf/);

    await s.down('client', s.nodes.get('phone')!.ifname);
    await s.startClient('phone', { proxied: true, pingTarget: device.address });
    assert.equal(await ping(s, 'client', device.address, 10), 10, 'the proxied config carries the traffic');
  });
});

for (const profile of ['cone', 'firewall'] as const) {
  test(`the device behind a ${profile} router: direct`, async () => {
    const t = seed(uniqueLabName(profile.slice(0, 4)));
    if (profile === 'firewall') {
      t.routers![0] = { name: 'devhome', profile: 'firewall', wan: '203.0.113.10', lan: '198.51.100.0/28' };
      t.hosts[1] = { name: 'device', network: 'devhome', address: '198.51.100.2' };
    } else t.routers![0] = home('devhome', 'cone', 1);
    await withLab(t, async (lab) => {
      const s = new Scenario(lab);
      const device = await s.hubDeviceAndPhone();
      await s.startClient('phone', { pingTarget: device.address });
      const before = await hubCounters(s, 'phone');
      assert.equal(await ping(s, 'client', device.address, 30), 30);
      assert.ok((await hubCounters(s, 'phone')) - before < 300, 'the hub carries none of it');
      assert.match((await s.endpointOn(device.ifname, await s.publicKey('phone'))) ?? '', /^203\.0\.113\.20:/);
    });
  });
}
