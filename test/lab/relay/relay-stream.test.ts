import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentSocketPath } from '../../../src/agent/socket-path.js';
import { adminGet } from '../../../src/core/admin-socket.js';
import { agentStatusSchema } from '../../../src/core/status.js';
import { Scenario } from '../../../src/lab/scenario.js';
import { behindRouters } from '../../../src/lab/topologies.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

/**
 * A relay on its own machine with a stream side (issue 12): an agent behind `udp-blocked` (a
 * hotel network: TCP to 80/443 only) and one behind a symmetric NAT, a hub without a relay of
 * its own, and a relay machine running `relay run` (TCP 443 by default). The hotel agent rides the
 * hub's TLS stream for its hub peer; its pair goes tcp-relay through the remote relay, its side
 * on that relay's stream side, opened with the hub's ticket.
 */
test("relay stream side: a udp-blocked agent's pair goes tcp-relay through a relay on its own machine, over that relay's TLS stream with the hub's ticket, and pings both ways", async (t) => {
  await withLab(
    behindRouters(
      uniqueLabName('rstream'),
      [
        { host: 'laptop', router: 'hotel', profile: 'udp-blocked' },
        { host: 'server', router: 'office', profile: 'symmetric' },
      ],
      { publicHosts: ['r1'] },
    ),
    async (lab) => {
      const s = new Scenario(lab);
      // No built-in relay: only the remote relay can carry the pair.
      s.hubRunArgs = ['--no-relay'];
      await s.initHub();
      await s.startRelay('rly1', 'r1');
      const relayAddress = lab.address('r1', 4);
      const laptop = await s.addNode('laptop', 'agent', 'laptop');
      const server = await s.addNode('server', 'agent', 'server');
      const t0 = Date.now();
      await s.startAgentsTogether(['server', 'laptop']);

      const registered = (await s.hubStatus()).relays?.find((r) => r.name === 'rly1');
      assert.match(registered?.stream ?? '', /^TCP 443, TLS key sha256\//, `the relay reported its stream side: ${JSON.stringify(registered)}`);

      const pair = await s.waitPath('laptop', 'server', 'relay', 20_000);
      assert.deepEqual(pair.streamSides, ['laptop'], JSON.stringify(pair));
      assert.equal(pair.relay, 'rly1', 'carried by the relay on its own machine');
      assert.equal(pair.via, relayAddress, "the remote relay's address, not the hub's");
      const toServer = await msUntilPingReply(lab.ns('laptop'), server.address, 15_000);
      const firstPingMs = Date.now() - t0;
      const toLaptop = await msUntilPingReply(lab.ns('server'), laptop.address, 10_000);
      await s.waitFor(async () => (await s.pair('laptop', 'server'))?.confirmed === true, 10_000, 'the relay path confirmed on both sides');

      // The laptop's side rides the relay's stream side (its shim's port on loopback), and status says by which relay.
      const st = agentStatusSchema.parse(await adminGet<unknown>(agentSocketPath(laptop.ifname), '/v1/status'));
      const peer = st.peers.find((p) => p.name === 'server');
      assert.equal(peer?.path, 'relayed', JSON.stringify(st.peers));
      assert.equal(peer?.endpoint?.address.toString(), '127.0.0.1');
      assert.equal(peer?.relay, `rly1 over its stream side at ${relayAddress}:443`);
      assert.deepEqual(st.hubTransport?.relayStreams, [{ relay: `${relayAddress}:443`, stream: 'up', allocations: 1 }]);
      assert.equal(st.hubTransport?.allocations, 0, "nothing of the pair rides the hub's own stream");
      // The server, on UDP, sends to the remote relay.
      const sv = agentStatusSchema.parse(await adminGet<unknown>(agentSocketPath(server.ifname), '/v1/status'));
      assert.equal(sv.peers.find((p) => p.name === 'laptop')?.endpoint?.address.toString(), relayAddress);
      const hubHuman = await s.cli(undefined, ['status', '--dir', s.dir]);
      assert.match(hubHuman.stdout, /relay over TCP\/TLS for laptop on rly1/);
      const laptopHuman = await s.cli('laptop', ['status', '--config', join(s.dir, 'nodes', 'laptop.agent.json'), '--interface', laptop.ifname]);
      assert.match(laptopHuman.stdout, /relayed by rly1 over its stream side at /);
      // The relay's stream side counts what it carries, and the hub shows it (stats every 5 s).
      await s.waitFor(async () => ((await s.hubStatus()).relays?.find((r) => r.name === 'rly1')?.streamStats?.nodes ?? 0) === 1, 12_000, "the relay's stream counters at the hub");
      t.diagnostic(`both agents started -> first ping reply through rly1 ${firstPingMs} ms; pair ${pair.reason}; ping laptop->server ${toServer} ms, server->laptop ${toLaptop} ms`);
    },
  );
});
