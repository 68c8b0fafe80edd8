import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getDevice } from '../../../src/core/wireguard/uapi.js';
import { Scenario } from '../../../src/lab/scenario.js';
import { behindRouters } from '../../../src/lab/topologies.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

test('live changes: groups decide who sees and reaches whom (also through the hub), a node can choose proxied mode, and nothing else is disturbed', async (t) => {
  await withLab(
    behindRouters(uniqueLabName('mgrp'), [
      { host: 'a', router: 'home1' },
      { host: 'b', router: 'home2' },
      { host: 'g', router: 'home3' },
      { host: 'phone', router: 'home3' },
    ]),
    async (lab) => {
      const s = new Scenario(lab);
      await s.initHub();
      await s.addNode('a', 'agent', 'a');
      const b = await s.addNode('b', 'agent', 'b');
      const g = await s.addNode('g', 'agent', 'g', ['--groups', 'other']);
      for (const n of ['a', 'b', 'g']) await s.startAgent(n);
      // A plain client on its proxied config: it takes whatever the hub forwards into the tunnel network.
      await s.addNode('phone', 'client', 'phone');
      await s.startClient('phone', { proxied: true });
      const phoneProxied = (JSON.parse((await s.cli(undefined, ['node', 'list', '--dir', s.dir, '--json'])).stdout) as { name: string; proxiedAddress: string }[]).find((n) => n.name === 'phone')!.proxiedAddress;
      await msUntilPingReply(lab.ns('a'), phoneProxied, 5000);
      await s.waitPath('a', 'b', 'direct');
      const keys = { a: await s.publicKey('a'), b: await s.publicKey('b'), g: await s.publicKey('g') };
      const peersOf = async (n: string) => (await getDevice(s.nodes.get(n)!.ifname)).peers.map((p) => p.publicKey);
      const set = (n: string, ...args: string[]) => s.cli(undefined, ['node', 'set', n, '--dir', s.dir, ...args]);

      // A steady ping a -> b runs through every change below: none of them may disturb it.
      const steady = lab.exec('a', 'ping', ['-n', '-q', '-c', '150', '-i', '0.1', b.address], { allowFail: true, timeoutMs: 60_000 });

      // g is in another group: a does not know it, and cannot reach it even through the hub.
      assert.ok(!(await peersOf('a')).includes(keys.g));
      const hubPeer = (await getDevice(s.nodes.get('g')!.ifname)).peers.find((p) => p.endpoint?.toString() === '203.0.113.2:51820')!;
      // g's hub peer already routes the proxied subnet; a proxied client of another group accepts
      // anything the hub forwards, so only the hub's group filter keeps g out.
      assert.ok(hubPeer.allowedIps.some((ip) => ip.startsWith('10.99.1.')), hubPeer.allowedIps.join(','));
      const sneak = await lab.exec('g', 'ping', ['-n', '-q', '-c', '3', '-W', '1', phoneProxied], { allowFail: true });
      assert.match(sneak.stdout, / 0 received/, 'the hub does not forward between groups');

      // g joins a's group, live: peers appear on both sides and the new pair goes direct.
      await set('g', '--groups', 'default,other');
      await s.waitFor(async () => (await peersOf('a')).includes(keys.g) && (await peersOf('g')).includes(keys.a), 5000, 'a and g to learn each other');
      await s.waitPath('a', 'g', 'direct');
      await msUntilPingReply(lab.ns('a'), g.address, 5000);

      // b chooses proxied mode: a reaches it through the hub, no peer entry for it.
      await set('b', '--proxied');
      await s.waitPath('a', 'b', 'hub');
      await s.waitFor(async () => !(await peersOf('a')).includes(keys.b), 5000, 'a to drop its direct peer b');
      const aHub = (await getDevice(s.nodes.get('a')!.ifname)).peers.find((p) => p.allowedIps.includes('10.99.0.1/32'))!;
      assert.ok(aHub.allowedIps.includes(`${b.address}/32`), `a routes b through the hub: ${aHub.allowedIps.join(',')}`);
      await msUntilPingReply(lab.ns('a'), b.address, 5000);

      // And back to peer-to-peer.
      await set('b', '--p2p');
      await s.waitPath('a', 'b', 'direct');
      await msUntilPingReply(lab.ns('a'), b.address, 5000);

      // g leaves the group: a forgets it.
      await set('g', '--groups', 'other');
      await s.waitFor(async () => !(await peersOf('a')).includes(keys.g), 5000, 'a to forget g');

      const r = await steady;
      const received = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
      t.diagnostic(`steady ping a -> b through every change: ${received}/150 replies`);
      // b's own move to proxied mode and back is the only change that touches the a-b path: allow the few pings of those two switches.
      assert.ok(received >= 140, `${received}/150`);
    },
  );
});
