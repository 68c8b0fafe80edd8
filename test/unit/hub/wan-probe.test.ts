import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { test } from 'node:test';
import pino from 'pino';
import { answerWanProbe } from '../../../src/agent/wan-probe-answer.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { WanProbe, type NatProbeCommand } from '../../../src/hub/wan-probe.js';
import { FakeClock } from '../fake-clock.js';

/**
 * The hub's WAN probe over loopback, no NAT: the "router" here is the test. The probe datagram
 * must go out before the command that makes the node answer, and the port the answer comes from
 * is the verdict; anything from another address is ignored, and silence ends in a null result.
 */
const log = pino({ level: 'silent' });

async function bound(port = 0): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(port, '127.0.0.1', () => r()));
  return s;
}

async function harness(clock?: FakeClock) {
  // The node's side: a socket at the port the hub will probe, so that the probe has somewhere to land.
  const node = await bound();
  const from = node.address().port;
  const events: string[] = [];
  const results: { key: string; port: number | null; probed: string }[] = [];
  let command: NatProbeCommand | undefined;
  node.on('message', () => events.push('probe arrived'));
  const probe = await WanProbe.open({
    send: (_k, m) => {
      events.push('command sent');
      command = m;
    },
    result: (key, port, probed) => results.push({ key, port, probed: probed.toString() }),
    pickPort: () => from,
    log,
    clock,
  });
  const until = async (pred: () => boolean) => {
    for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 5));
  };
  return { node, from, events, results, probe, until, command: () => command };
}

test('WAN probe: the datagram leaves before the command; an answer from the probed port means the router dropped it', async () => {
  const h = await harness();
  assert.equal(h.probe.probe('k', Endpoint.parse('127.0.0.1:51820')), true);
  assert.equal(h.probe.probing('k'), true);
  assert.equal(h.probe.probe('k2', Endpoint.parse('127.0.0.1:51821')), false, 'one probe per public address at a time');
  await h.until(() => h.command() !== undefined && h.events.includes('probe arrived'));
  assert.deepEqual(h.command(), { type: 'nat-probe', port: h.probe.port, from: h.from });
  h.node.close();
  await answerWanProbe(Endpoint.parse(`127.0.0.1:${h.probe.port}`), h.from, log);
  await h.until(() => h.results.length > 0);
  assert.deepEqual(h.results, [{ key: 'k', port: h.from, probed: `127.0.0.1:${h.from}` }]);
  assert.equal(h.probe.probing('k'), false);
  h.probe.close();
});

test('WAN probe: an answer from another port is what a leaky router does; silence gives null after the timeout', async () => {
  const h = await harness();
  h.probe.probe('k', Endpoint.parse('127.0.0.1:51820'));
  await h.until(() => h.command() !== undefined);
  // The "router" moved the node's port: the answer comes from elsewhere.
  const elsewhere = await bound();
  await new Promise<void>((r) => elsewhere.send('x', h.probe.port, '127.0.0.1', () => r()));
  await h.until(() => h.results.length > 0);
  assert.equal(h.results[0].port, elsewhere.address().port);
  elsewhere.close();
  h.node.close();
  h.probe.close();

  const clock = new FakeClock();
  const q = await harness(clock);
  q.probe.probe('k', Endpoint.parse('127.0.0.1:51820'));
  await q.until(() => q.command() !== undefined);
  await clock.advance(1000);
  assert.deepEqual(q.results.map((r) => r.port), [null]);
  assert.equal(q.probe.probing('k'), false);
  q.node.close();
  q.probe.close();
});

test('WAN probe: IPv6 is not probed, a cancelled probe reports nothing, and datagrams nobody is probing for are ignored', async () => {
  const h = await harness();
  assert.equal(h.probe.probe('v6', Endpoint.parse('[2001:db8::1]:51820')), false);
  h.probe.probe('k', Endpoint.parse('127.0.0.1:51820'));
  await h.until(() => h.command() !== undefined);
  h.probe.cancel('k');
  assert.equal(h.probe.probing('k'), false);
  h.node.close();
  await answerWanProbe(Endpoint.parse(`127.0.0.1:${h.probe.port}`), h.from, log);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(h.results, [], 'nothing pending: the answer is dropped');
  h.probe.close();
});
