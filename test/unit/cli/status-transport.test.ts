import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hubTransportText, streamNodesText } from '../../../src/cli/status.js';
import { nodeStatusSchema } from '../../../src/core/status.js';

test('the agent status line names the transport, the relay, the reason and the probing', () => {
  assert.equal(
    hubTransportText({ transport: 'tcp/tls', state: 'stream', reason: 'no UDP handshake with the hub within 2 s', sinceMs: 40_000, relay: '203.0.113.1:443', stream: 'up', nextProbeInMs: 2000, probeEveryMs: 4000, allocations: 1 }),
    'hub: tcp/tls 203.0.113.1:443 (no UDP handshake with the hub within 2 s; probing UDP every 4 s, next in 2 s)',
  );
  assert.match(hubTransportText({ transport: 'tcp/tls', state: 'trying-stream', reason: 'r', sinceMs: 1, relay: 'h:443', stream: 'down (the relay refused: bad token; retry in 10 s)', nextProbeInMs: null, probeEveryMs: 1000, allocations: 0 }), /stream down \(the relay refused: bad token/);
  assert.equal(hubTransportText({ transport: 'udp', state: 'udp', reason: 'handshake with the hub over UDP', sinceMs: 1, relay: 'h:443', stream: null, nextProbeInMs: null, allocations: 0 }), 'hub: udp (handshake with the hub over UDP)');
  assert.equal(hubTransportText(undefined), 'hub transport: not reported by this agent');
});

test("the hub lists the nodes on its stream with their agents' reasons", () => {
  const base = { kind: 'agent' as const, address: '10.99.0.2', address6: 'fd00::2', handshakeAgeMs: 1, rxBytes: 0, txBytes: 0 };
  const nodes = [
    nodeStatusSchema.parse({ ...base, name: 'hotel', endpoint: '127.0.0.1:40001', transport: { transport: 'tcp/tls', reason: 'no UDP handshake with the hub within 2 s' } }),
    nodeStatusSchema.parse({ ...base, name: 'home', endpoint: '198.51.100.2:51820', transport: { transport: 'udp', reason: null } }),
  ];
  assert.deepEqual(streamNodesText(nodes), ['hotel: on the TLS stream (no UDP handshake with the hub within 2 s)']);
});

test('doctor explains a pair relayed over the stream by the side that rides it', async () => {
  const { explainPair } = await import('../../../src/core/doctor/explain-pair.js');
  const pair = { a: 'hotel', b: 'home', mode: 'relay' as const, confirmed: true, attempting: false, via: '203.0.113.2', candidate: null, family: 4 as const, bridged: false, relayId: '00112233aabbccdd', streamSides: ['hotel'], sinceMs: 1, directAfterMs: null, firstPathMs: 300, failures: 0, nextRetryInMs: null, reason: 'direct impossible', history: [], relayed: null };
  assert.match(explainPair(pair, { name: 'hotel' }, { name: 'home' }), /^hotel <-> home relayed over TCP\/TLS \(tcp-relay\): hotel reaches the hub only over its TLS stream/);
});
