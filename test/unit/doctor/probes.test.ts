import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDefaultGateway } from '../../../src/agent/doctor/gateway.js';
import { announceAnswer } from '../../../src/agent/doctor/pcp-announce.js';
import { encodePcpAnnounce } from '../../../src/core/portmap/pcp.js';
import { wireguardMapping } from '../../../src/agent/doctor/hub-view.js';
import { doctorView } from '../../../src/hub/doctor-view.js';
import { IpAddress } from '../../../src/core/net/address.js';
import { answer } from '../../../src/hub/stun-responder.js';
import { METHOD_BINDING } from '../../../src/core/stun/message.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import type { HubStatusJson } from '../../../src/core/status.js';

test('the default gateway is read from /proc/net/route (little-endian hex, RTF_GATEWAY set)', () => {
  const table = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth0\t0064A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
    'eth0\t00000000\t0164A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
  ].join('\n');
  assert.equal(parseDefaultGateway(table)?.toString(), '192.168.100.1');
  assert.equal(parseDefaultGateway(table.split('\n').slice(0, 2).join('\n')), null, 'no default route');
});

test("doctor's PCP probe asks with an ANNOUNCE and reads the answer through the shared codec: the epoch, or why not", () => {
  const req = encodePcpAnnounce(IpAddress.parse('192.168.1.2'));
  assert.deepEqual([...req.subarray(0, 4)], [2, 0, 0, 0], 'version 2, R=0, opcode ANNOUNCE');
  const res = Buffer.alloc(24);
  res[0] = 2;
  res[1] = 0x80;
  res.writeUInt32BE(1234, 8);
  assert.deepEqual(announceAnswer(res), { ok: true, epoch: 1234 });
  const natpmp = Buffer.from(res);
  natpmp[0] = 0;
  assert.match((announceAnswer(natpmp) as { reason: string }).reason, /version 0, not PCP's 2/);
  const refused = Buffer.from(res);
  refused[3] = 2;
  assert.match((announceAnswer(refused) as { reason: string }).reason, /\(2\)/);
  const request = Buffer.from(res);
  request[1] = 0;
  assert.match((announceAnswer(request) as { reason: string }).reason, /R bit clear/);
});

test('the STUN responder answers change-port from the other port and RESPONSE-PORT to the same address only; change-IP is 420', () => {
  const tid = Buffer.alloc(12, 7);
  const src = Endpoint.parse('198.51.100.9:40000');
  const hub = { address: IpAddress.parse('192.0.3.2') };
  const plain = answer({ cls: 'request', method: METHOD_BINDING, transactionId: tid }, src, hub, 3478, 3478);
  assert.equal(plain.to.toString(), '198.51.100.9:40000');
  assert.equal(plain.fromOther, false);
  assert.equal(plain.redirected, false);
  assert.equal(plain.message.mapped?.toString(), '198.51.100.9:40000');
  assert.equal(plain.message.otherAddress?.toString(), '192.0.3.2:3479');
  const change = answer({ cls: 'request', method: METHOD_BINDING, transactionId: tid, changePort: true }, src, hub, 3478, 3478);
  assert.equal(change.fromOther, true);
  assert.equal(change.message.responseOrigin?.toString(), '192.0.3.2:3479');
  assert.equal(change.redirected, true);
  const port = answer({ cls: 'request', method: METHOD_BINDING, transactionId: tid, responsePort: 41000 }, src, hub, 3479, 3478);
  assert.equal(port.to.toString(), '198.51.100.9:41000', 'the request\'s own address, another port');
  assert.equal(port.message.otherAddress?.toString(), '192.0.3.2:3478');
  const ip = answer({ cls: 'request', method: METHOD_BINDING, transactionId: tid, changeIp: true }, src, hub, 3478, 3478);
  assert.equal(ip.message.cls, 'error');
  assert.equal(ip.message.error?.code, 420);
  assert.deepEqual(ip.message.unknownAttributes, [0x0003]);
});

test('the hub and the relay as observers of WireGuard\'s port: same port, another port, or not comparable', () => {
  assert.equal(wireguardMapping('192.0.3.20:51820', '192.0.3.20:51820'), 'independent');
  assert.equal(wireguardMapping('192.0.3.20:51820', '192.0.3.20:1234'), 'dependent');
  assert.equal(wireguardMapping('192.0.3.20:51820', '192.0.3.21:1234'), null, 'another address: another network, not a mapping');
  assert.equal(wireguardMapping('192.0.3.20:51820', null), null);
});

test('what an agent is told: itself, its pairs, and of its peers no endpoint and no other agents\' names', () => {
  const node = (name: string, endpoint: string | null) => ({ name, kind: 'agent' as const, address: '10.99.0.2', address6: 'fd00::2', endpoint, handshakeAgeMs: 1, rxBytes: 0, txBytes: 0, connected: true, paths: [{ agent: 'zz', path: 'direct' as const, directAfterMs: 1, reason: null, handshakeAgeMs: 1 }] });
  const p = (a: string, b: string) => ({ a, b, mode: 'relay' as const, confirmed: true, attempting: false, via: null, candidate: null, family: 4 as const, bridged: false, relayId: null, sinceMs: 0, directAfterMs: null, firstPathMs: null, failures: 0, nextRetryInMs: null, reason: null, history: [], relayed: null });
  const status = { hub: {} as HubStatusJson['hub'], nodes: [node('a', '192.0.3.20:51820'), node('b', '192.0.3.21:51820'), node('c', '192.0.3.22:51820')], pairs: [p('a', 'b'), p('b', 'c')], relays: [] } as HubStatusJson;
  const v = doctorView(status, 'a', '192.0.3.20:51820')!;
  assert.equal(v.node.endpoint, '192.0.3.20:51820');
  assert.deepEqual(v.pairs.map((x) => `${x.a}-${x.b}`), ['a-b']);
  assert.deepEqual(v.peers.map((x) => x.name), ['b']);
  assert.equal('endpoint' in v.peers[0], false);
  assert.equal('paths' in v.peers[0], false);
  assert.equal(doctorView(status, 'nobody', null), undefined);
});

test('the hub\'s STUN endpoints: bare addresses get the STUN port, a given port is kept, one per family', async () => {
  const { stunServers } = await import('../../../src/agent/doctor/stun-servers.js');
  const s = await stunServers(['192.0.3.2', '[2001:db8::2]', '192.0.3.9'], 3478);
  assert.equal(s[4]?.toString(), '192.0.3.2:3478', 'the first of a family wins');
  assert.equal(s[6]?.toString(), '[2001:db8::2]:3478');
  assert.equal((await stunServers(['2001:db8::2'], 3478))[6]?.toString(), '[2001:db8::2]:3478', 'a bare IPv6 address');
  assert.equal((await stunServers(['192.0.3.2:4000'], 3478))[4]?.toString(), '192.0.3.2:4000');
});
