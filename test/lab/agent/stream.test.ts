import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentSocketPath } from '../../../src/agent/socket-path.js';
import { adminGet } from '../../../src/core/admin-socket.js';
import { join } from 'node:path';
import { doctorReportSchema } from '../../../src/core/doctor/report.js';
import { agentStatusSchema } from '../../../src/core/status.js';
import { Scenario } from '../../../src/lab/scenario.js';
import { behindRouters } from '../../../src/lab/topologies.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

/**
 * An agent behind a router that drops UDP from its LAN and passes TCP only to 80/443 (the lab's
 * `udp-blocked`, a hotel network) and an agent behind a home NAT: the hotel agent's hub peer
 * rides the hub's TLS stream on TCP 443, their pair runs over the relay with the hotel side on
 * the stream (tcp-relay), and when the laptop leaves the hotel for a home network the hub peer
 * goes back to UDP and the pair goes direct.
 */
const topology = () =>
  behindRouters(uniqueLabName('tcpstream'), [
    { host: 'laptop', router: 'hotel', profile: 'udp-blocked' },
    { host: 'server', router: 'office', profile: 'restricted' },
  ], { empty: [{ router: 'home', profile: 'restricted' }] });

async function agentStatus(ifname: string) {
  return agentStatusSchema.parse(await adminGet<unknown>(agentSocketPath(ifname), '/v1/status'));
}

test('stream: an agent behind udp-blocked reaches the hub over TCP/TLS, its pair with a home agent is relayed over the stream and pings; leaving the hotel, the pair goes direct', async (t) => {
  await withLab(topology(), async (lab) => {
    const s = new Scenario(lab);
    await s.initHub();
    const laptop = await s.addNode('laptop', 'agent', 'laptop');
    const server = await s.addNode('server', 'agent', 'server');
    const t0 = Date.now();
    await s.startAgentsTogether(['server', 'laptop']);
    const connectedMs = Date.now() - t0;

    // The hub sees the laptop on its stream side, and says why (the agent's reason). The control
    // connection may open while the stream is still being proven: until the agent's next hello
    // the hub shows its own inference ("seen on the hub's stream side").
    await s.waitFor(async () => {
      const r = (await s.hubStatus()).nodes.find((n) => n.name === 'laptop');
      return r?.transport?.transport === 'tcp/tls' && /^127\.0\.0\.1:/.test(r.endpoint ?? '') && /no UDP handshake/.test(r.transport.reason ?? '');
    }, 5000, 'the hub to see the laptop on its stream').catch(() => undefined);
    const hub = await s.hubStatus();
    const row = hub.nodes.find((n) => n.name === 'laptop')!;
    assert.equal(row.transport?.transport, 'tcp/tls', JSON.stringify(row));
    assert.match(row.endpoint ?? '', /^127\.0\.0\.1:/);
    assert.match(row.transport?.reason ?? '', /no UDP handshake/);
    await s.waitFor(async () => (await s.hubStatus()).nodes.find((n) => n.name === 'server')!.transport?.transport === 'udp', 5000, 'the home agent on UDP');

    const pair = await s.waitPath('laptop', 'server', 'relay', 15_000);
    assert.deepEqual(pair.streamSides, ['laptop']);
    const replyMs = await msUntilPingReply(lab.ns('laptop'), server.address, 15_000);
    const firstPingMs = Date.now() - t0;
    const st = await agentStatus(laptop.ifname);
    assert.equal(st.hubTransport?.transport, 'tcp/tls');
    assert.equal(st.hubTransport?.relay, '203.0.113.2:443');
    assert.ok(st.peers.some((p) => p.name === 'server' && p.path === 'relayed' && p.endpoint?.address.toString() === '127.0.0.1'), JSON.stringify(st.peers));
    // status and doctor on the laptop say it, with the reason.
    const human = await s.cli('laptop', ['status', '--config', join(s.dir, 'nodes', 'laptop.agent.json'), '--interface', laptop.ifname]);
    assert.match(human.stdout, /^hub: tcp\/tls 203\.0\.113\.2:443 \(no UDP handshake with the hub within 2 s; probing UDP every/m);
    const doc = doctorReportSchema.parse(JSON.parse((await s.cli('laptop', ['doctor', '--config', join(s.dir, 'nodes', 'laptop.agent.json'), '--interface', laptop.ifname, '--no-port-mapping', '--json'])).stdout));
    assert.equal(doc.hubTransport?.transport, 'tcp/tls');
    assert.deepEqual(doc.outlook.map((o) => o.path), ['relay']);
    assert.ok(doc.pairs.some((p) => /over TCP\/TLS \(tcp-relay\)/.test(p.explanation)), JSON.stringify(doc.pairs));
    const hubHuman = await s.cli(undefined, ['status', '--dir', s.dir]);
    assert.match(hubHuman.stdout, /relay over TCP\/TLS for laptop/);
    assert.match(hubHuman.stdout, /^laptop: on the TLS stream \(no UDP handshake/m);
    // And the other way: the home agent reaches the laptop through the relay.
    await msUntilPingReply(lab.ns('server'), laptop.address, 10_000);
    t.diagnostic(`both agents started -> both connected ${connectedMs} ms; -> first ping reply ${firstPingMs} ms (ping itself ${replyMs} ms); pair: ${pair.reason}`);

    // The laptop leaves the hotel for a home network: UDP passes, the hub peer goes back, the pair goes direct.
    const t1 = Date.now();
    await lab.moveHost('laptop', 'home', undefined, { rebind: false });
    await s.waitFor(async () => (await agentStatus(laptop.ifname)).hubTransport?.transport === 'udp', 15_000, "the laptop's hub peer back on UDP");
    const udpMs = Date.now() - t1;
    const direct = await s.waitPath('laptop', 'server', 'direct', 15_000);
    const directMs = Date.now() - t1;
    await msUntilPingReply(lab.ns('laptop'), server.address, 5000);
    const back = await s.hubStatus();
    assert.equal(back.nodes.find((n) => n.name === 'laptop')!.transport?.transport, 'udp');
    assert.equal(direct.mode, 'direct');
    t.diagnostic(`left the hotel: hub peer on UDP after ${udpMs} ms, pair direct after ${directMs} ms (${direct.reason})`);
  });
});

test("stream: the udp-blocked router starts passing UDP (its rules change, no interface of the agent does): the agent's probes find it and the pair goes direct", async (t) => {
  await withLab(topology(), async (lab) => {
    const s = new Scenario(lab);
    await s.initHub();
    const laptop = await s.addNode('laptop', 'agent', 'laptop');
    await s.addNode('server', 'agent', 'server');
    await s.startAgent('server');
    await s.startAgent('laptop');
    await s.waitPath('laptop', 'server', 'relay', 15_000);
    assert.equal((await agentStatus(laptop.ifname)).hubTransport?.transport, 'tcp/tls');
    const t1 = Date.now();
    await lab.setNatProfile('hotel', 'restricted');
    // Found by the probe backoff (1 s doubling to 15 s), not by a network change.
    await s.waitFor(async () => (await agentStatus(laptop.ifname)).hubTransport?.transport === 'udp', 20_000, "the laptop's hub peer back on UDP");
    const udpMs = Date.now() - t1;
    const direct = await s.waitPath('laptop', 'server', 'direct', 15_000);
    t.diagnostic(`router rules changed: hub peer on UDP after ${udpMs} ms, pair direct after ${Date.now() - t1} ms (${direct.reason})`);
  });
});
