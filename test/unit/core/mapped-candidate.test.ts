import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gather, kindOf, type NodeView } from '../../../src/core/candidates/index.js';
import type { NatBehaviour } from '../../../src/core/nat.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { networkFactsSchema } from '../../../src/core/protocol.js';

const symmetric: NatBehaviour = { mapping: 'dependent', filtering: 'unknown', mappingWhy: 'NAT changed the port', filteringWhy: 'no attempt yet', leaky: 'unknown', leakyWhy: 'not probed yet' };
const restricted: NatBehaviour = { mapping: 'independent', filtering: 'dependent', mappingWhy: 'NAT kept port 51820', filteringWhy: 'a symmetric peer could not reach it directly', leaky: 'unknown', leakyWhy: 'not probed yet' };
const node = (name: string, seen: string, nat: NatBehaviour, mapped?: string): NodeView => ({ name, seen: Endpoint.parse(seen), interfaces: [], listenPort: 51820, nat, mapped: mapped ? Endpoint.parse(mapped) : null });
const mapped = kindOf('mapped');
const kinds = (x: NodeView, y: NodeView) => gather(x, y).filter((c) => c.kind.blocked(x, y) === null).map((c) => `${c.kind.id} ${c.forX} ${c.forY}`);

test('symmetric x symmetric: no punch can work, but one mapped side makes it direct, the unmapped side initiating toward the mapping', () => {
  const a = node('a', '192.0.3.10:40001', symmetric);
  const b = node('b', '192.0.3.20:40002', symmetric, '192.0.3.20:51820');
  assert.deepEqual(kinds(a, b), ['mapped 192.0.3.20:51820 192.0.3.10:40001']);
  assert.equal(mapped.initiator!(a, b), 'x', 'a has no mapping: only its packet can show b where it is');
  assert.equal(mapped.initiator!(b, a), 'y');
  assert.equal(mapped.responderOpensNat, false, 'the mapped side sends nothing before the peer: its own packet would take the conntrack tuple the peer needs');
  const none = node('c', '192.0.3.30:40003', symmetric);
  assert.deepEqual(kinds(a, none), [], 'neither mapped: still impossible');
});

test('symmetric x restricted: direct when the symmetric side maps; the mapped port is not used as evidence of either NAT', () => {
  const sym = node('s', '192.0.3.10:40001', symmetric, '192.0.3.10:41000');
  const home = node('h', '192.0.3.20:51820', restricted);
  assert.deepEqual(kinds(home, sym), ['mapped 192.0.3.10:41000 192.0.3.20:51820'], 'another external port than asked for works');
  assert.equal(mapped.crossesNat, false);
});

test('with a usable mapping no IPv4 punch is gathered, even for a retry that tries blocked kinds: the mapped side must never punch the peer', () => {
  const unknown: NatBehaviour = { ...restricted, filtering: 'unknown', mapping: 'unknown' };
  const home = node('h', '192.0.3.20:51820', unknown);
  const mappedSide = node('p', '192.0.3.10:40001', unknown, '192.0.3.10:51820');
  assert.deepEqual(gather(home, mappedSide).map((c) => c.kind.id), ['mapped']);
  assert.deepEqual(gather(mappedSide, home).map((c) => c.kind.id), ['mapped']);
  const unmapped = node('p', '192.0.3.10:40001', unknown);
  assert.deepEqual(gather(home, unmapped).map((c) => c.kind.id), ['public4'], 'without the mapping the punch is back');
});

test('a mapping counts only on the router the hub sees the node behind, and only over IPv4', () => {
  const a = node('a', '192.0.3.10:40001', symmetric);
  const inner = node('b', '192.0.3.20:40002', symmetric, '198.18.0.5:51820');
  assert.deepEqual(kinds(a, inner), [], 'a mapping on the inner router of a double NAT reaches nobody outside');
  const v6 = { ...node('c', '192.0.3.30:1', symmetric, '192.0.3.30:51820'), seen: Endpoint.parse('[2001:db8::3]:51820') };
  assert.equal(mapped.gather(a, v6), undefined);
});

test('an agent reports its mapping as facts the hub validates: a public IPv4 endpoint forwarding to the listen port', () => {
  const ok = networkFactsSchema.safeParse({ listenPort: 51820, interfaces: [], portMapping: { protocol: 'pcp', external: '192.0.3.10:40000', internalPort: 51820, expiresInMs: 7_200_000 } });
  assert.ok(ok.success);
  assert.ok(networkFactsSchema.safeParse({ listenPort: 51820, interfaces: [] }).success, 'an agent of an earlier release reports none');
  const bad = (portMapping: unknown) => {
    const r = networkFactsSchema.safeParse({ listenPort: 51820, interfaces: [], portMapping });
    return r.success ? '' : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  };
  assert.match(bad({ protocol: 'pcp', external: '192.168.1.1:40000', internalPort: 51820, expiresInMs: 1 }), /portMapping.external: must be a public IPv4 endpoint/);
  assert.match(bad({ protocol: 'pcp', external: '[2001:db8::1]:40000', internalPort: 51820, expiresInMs: 1 }), /public IPv4/);
  assert.match(bad({ protocol: 'pcp', external: '192.0.3.1:40000', internalPort: 22, expiresInMs: 1 }), /portMapping.internalPort: is 22, not the listen port 51820/);
  assert.match(bad({ protocol: 'socks', external: '192.0.3.1:40000', internalPort: 51820, expiresInMs: 1 }), /portMapping.protocol/);
  assert.match(bad({ protocol: 'upnp', external: { family: 4, address: 5 }, internalPort: 51820, expiresInMs: 1 }), /portMapping.external/);
  assert.match(bad('junk'), /portMapping/);
});
