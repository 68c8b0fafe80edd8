import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gather, KINDS, kindOf, type NodeView } from '../../../src/core/candidates/index.js';
import { isLanAddress } from '../../../src/core/candidates/lan.js';
import { keptReported } from '../../../src/core/candidates/reported.js';
import type { NatBehaviour } from '../../../src/core/nat.js';
import { Prefixed } from '../../../src/core/net/cidr.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';

const cone: NatBehaviour = { mapping: 'independent', filtering: 'unknown', mappingWhy: 'NAT kept port 51820', filteringWhy: 'no attempt yet', leaky: 'unknown', leakyWhy: 'not probed yet' };
const symmetric: NatBehaviour = { mapping: 'dependent', filtering: 'unknown', mappingWhy: 'NAT changed the port', filteringWhy: 'no attempt yet', leaky: 'unknown', leakyWhy: 'not probed yet' };

const node = (name: string, seen: string | null, interfaces: string[], nat = cone): NodeView => ({ name, seen: seen === null ? null : Endpoint.parse(seen), interfaces: interfaces.map((i) => Prefixed.parse(i)), listenPort: 51820, nat });
const ids = (x: NodeView, y: NodeView) => gather(x, y).map((c) => `${c.kind.id} ${c.forX.toString()} ${c.forY.toString()}`);

test('every kind is registered once, ranked, with a window, and found by its wire name', () => {
  assert.deepEqual(KINDS.map((k) => k.id), ['public6', 'lan', 'mapped', 'public4'], 'IPv6 first (no NAT), then the LAN behind one router, then a router-mapped port, then IPv4 through the NATs');
  assert.equal(new Set(KINDS.map((k) => k.priority)).size, KINDS.length);
  assert.equal(kindOf('lan').windowMs, 600, 'a LAN answers within a millisecond or not at all');
  assert.equal(kindOf('public4').windowMs, 2000);
  assert.equal(kindOf('public6').windowMs, 2000);
});

test('public IPv6: each side sends to the other\'s global address at its listen port; ULA, link-local and temporary-looking private space are never candidates', () => {
  const a = node('a', '203.0.113.10:51820', ['192.168.1.2/24', '2001:db8:a::2/64', 'fd00:1::2/64']);
  const b = node('b', '203.0.113.20:40000', ['192.168.2.2/24', '2001:db8:b::2/64'], symmetric);
  assert.deepEqual(ids(a, b), ['public6 [2001:db8:b::2]:51820 [2001:db8:a::2]:51820', 'public4 203.0.113.20:40000 203.0.113.10:51820']);
  const sym = node('s', '203.0.113.30:40001', ['2001:db8:c::2/64'], symmetric);
  assert.equal(kindOf('public6').blocked(b, sym), null, 'IPv4 NATs say nothing about IPv6: two symmetric IPv4 NATs can still go direct over IPv6');
  assert.match(kindOf('public4').blocked(b, sym) ?? '', /both NATs map per destination/);
  const ulaOnly = node('u', '203.0.113.40:51820', ['fd00:2::2/64', 'fe80::2/64']);
  assert.deepEqual(ids(a, ulaOnly).map((s) => s.split(' ')[0]), ['public4'], 'no global IPv6 address, no IPv6 candidate');
  const v6seen = node('h', '[2001:db8:d::9]:51820', []);
  assert.deepEqual(ids(a, v6seen), ['public6 [2001:db8:d::9]:51820 [2001:db8:a::2]:51820'], "the hub's own IPv6 sighting counts; no IPv4 candidate without an IPv4 sighting");
});

test('the LAN kind offers only private (RFC 1918) and shared (RFC 6598) addresses, and only behind one public IPv4 address', () => {
  const a = node('a', '203.0.113.10:51820', ['198.51.100.7/24', '100.64.0.2/24']);
  const b = node('b', '203.0.113.10:40000', ['100.64.0.3/24']);
  assert.deepEqual(ids(a, b)[0], 'lan 100.64.0.3:51820 100.64.0.2:51820', 'a public address on an interface is not a LAN candidate');
  assert.equal(ids(node('x', '[2001:db8::1]:51820', ['192.168.0.2/24']), node('y', '[2001:db8::1]:51820', ['192.168.0.3/24'])).some((s) => s.startsWith('lan')), false, 'one IPv6 address says nothing about sharing a router');
});

test('a proof is an authenticated packet over the candidate\'s family', () => {
  const v4 = Endpoint.parse('203.0.113.20:51820');
  const v6 = Endpoint.parse('[2001:db8::2]:51820');
  for (const k of KINDS) {
    const tried = k.id === 'public6' ? v6 : v4;
    assert.ok(k.proves(tried.withPort(4444), tried), `${k.id}: the peer at another port of the same family (a NAT's new port)`);
  }
  assert.ok(!kindOf('public6').proves(v4, v6), 'an IPv4 packet during an IPv6 attempt proves nothing about IPv6');
  assert.ok(!kindOf('public4').proves(v6, v4));
});

test('of the addresses an agent reports, the hub keeps LAN (RFC 1918, RFC 6598, fe80::/10, fd00::/8) and public ones and drops the rest (issue 10, LAN candidates)', () => {
  const reported = ['10.0.0.2/8', '172.16.1.2/12', '192.168.1.2/24', '100.64.0.2/10', 'fe80::1/64', 'fd12::1/64', '203.0.113.10/24', '2001:db8::10/64', '127.0.0.2/8', '169.254.3.4/16', '224.0.0.5/24', '240.0.0.1/8', 'fc00::1/64', '::1/128'].map((s) => Prefixed.parse(s));
  const { kept, dropped } = keptReported(reported);
  assert.deepEqual(kept.map(String), ['10.0.0.2/8', '172.16.1.2/12', '192.168.1.2/24', '100.64.0.2/10', 'fe80::1/64', 'fd12::1/64', '203.0.113.10/24', '2001:db8::10/64']);
  assert.deepEqual(dropped.map(String), ['127.0.0.2/8', '169.254.3.4/16', '224.0.0.5/24', '240.0.0.1/8', 'fc00::1/64', '::1/128']);
  assert.deepEqual(kept.filter((p) => isLanAddress(p.address)).length, 6, 'public addresses are kept, but are no LAN addresses');
  // Behind one public address, a loopback "LAN" address is never offered to the peer.
  const a = node('a', '203.0.113.10:51820', ['127.0.0.2/8']);
  const b = node('b', '203.0.113.10:40000', ['192.168.1.3/24']);
  assert.equal(ids(a, b).some((s) => s.startsWith('lan')), false);
});
