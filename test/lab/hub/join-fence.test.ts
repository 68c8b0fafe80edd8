import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeJoinCode } from '../../../src/core/join-code.js';
import { FORWARD_TABLE } from '../../../src/hub/forward-filter.js';
import { JOIN_FENCE_PRIORITY } from '../../../src/hub/join-fence.js';
import { HUB_TUNNEL, Scenario } from '../../../src/lab/scenario.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

test('an unused join code\'s tunnel reaches the hub but is not forwarded to any node, even without nftables (issue 10, finding 6)', { timeout: 120_000 }, async () => {
  await withLab(
    {
      name: uniqueLabName('jfence'),
      routers: [
        { name: 'home', profile: 'restricted', wan: '203.0.113.10', lan: '192.168.10.0/24' },
        { name: 'other', profile: 'restricted', wan: '203.0.113.20', lan: '192.168.20.0/24' },
      ],
      hosts: [
        { name: 'hub', network: 'internet', address: '203.0.113.2' },
        { name: 'a1', network: 'home', address: '192.168.10.2' },
        { name: 'holder', network: 'other', address: '192.168.20.2' },
      ],
    },
    async (lab) => {
      const s = new Scenario(lab);
      await s.initHub();
      const a1 = await s.addNode('a1', 'agent', 'a1');
      await s.startAgent('a1');
      const code = decodeJoinCode(await s.joinCode('laptop'));
      // As on a hub without nftables: the group filter is gone, iptables (hub.conf) accepts wg -> wg.
      await lab.exec('hub', 'nft', ['delete', 'table', 'inet', FORWARD_TABLE], { allowFail: true });
      await s.waitFor(async () => (await lab.exec('hub', 'ip', ['rule', 'show', 'priority', String(JOIN_FENCE_PRIORITY)])).stdout.includes(`from ${code.address.split("/")[0]} `), 10_000, 'the join tunnel\'s fence');

      // Whoever holds the code brings its one-time tunnel up by hand, asking for the whole tunnel network.
      const ifname = s.ifname('holder');
      const conf = join(lab.logDir, `${ifname}.conf`);
      writeFileSync(conf, `[Interface]\nPrivateKey = ${code.key}\nAddress = ${code.address.split("/")[0]}/32\n\n[Peer]\nPublicKey = ${code.hubPublicKey}\nEndpoint = ${code.hubEndpoints[0]}\nAllowedIPs = 10.99.0.0/24\nPersistentKeepalive = 1\n`, { mode: 0o600 });
      await s.upConf('holder', conf, ifname);
      await msUntilPingReply(lab.ns('holder'), HUB_TUNNEL, 10_000);
      const r = await lab.exec('holder', 'ping', ['-n', '-q', '-c', '5', '-i', '0.2', '-W', '1', a1.address], { allowFail: true });
      assert.match(r.stdout, / 0 received/, `the hub answers the join tunnel, but a node behind it does not: ${r.stdout}`);
      // The fence is about the join tunnel only: a1 itself still reaches the hub and is reached.
      await msUntilPingReply(lab.ns('a1'), HUB_TUNNEL, 5000);
    },
  );
});
