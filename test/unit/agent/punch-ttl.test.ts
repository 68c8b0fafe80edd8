import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseProbe, ttlFromHops, type Hop } from '../../../src/agent/punch-ttl.js';
import { IpAddress } from '../../../src/core/net/address.js';

const ip = (s: string) => IpAddress.parse(s);

test('the opening TTL passes every NAT hop (private, carrier-grade) and dies at the next router', () => {
  // A home router, then the ISP's router: TTL 2 dies at the ISP.
  assert.equal(ttlFromHops([ip('192.168.10.1'), ip('198.51.100.1'), 'target', 'target']), 2);
  // A home router behind a carrier NAT (RFC 6598): pass both.
  assert.equal(ttlFromHops([ip('192.168.10.1'), ip('100.64.1.1'), ip('198.51.100.1'), 'target']), 3);
  // A hop that does not answer is no reason to stop early.
  assert.equal(ttlFromHops([ip('192.168.10.1'), null, ip('198.51.100.1'), 'target']), 2);
  // A public LAN behind a stateful firewall: pass the firewall.
  assert.equal(ttlFromHops([ip('198.51.100.1'), ip('203.0.113.1'), 'target', 'target']), 2);
});

test('no opening TTL where it might still reach a peer: the hub answers within it, or nothing answered', () => {
  // The lab's one internet link: the hub (and any other router) is the next hop after ours.
  assert.equal(ttlFromHops([ip('192.168.10.1'), 'target', 'target', 'target']), null);
  assert.equal(ttlFromHops([null, null, null, null]), null);
  assert.equal(ttlFromHops([]), null);
});

test("ping's words for each hop", () => {
  const exceeded = 'PING 203.0.113.2 (203.0.113.2) 56(84) bytes of data.\nFrom 192.168.10.1 icmp_seq=1 Time to live exceeded\n\n--- 203.0.113.2 ping statistics ---\n1 packets transmitted, 0 received, +1 errors, 100% packet loss, time 0ms\n';
  assert.equal(String(parseProbe(exceeded)), '192.168.10.1');
  const answered = 'PING 203.0.113.2 (203.0.113.2) 56(84) bytes of data.\n64 bytes from 203.0.113.2: icmp_seq=1 ttl=63 time=0.091 ms\n';
  assert.equal(parseProbe(answered), 'target');
  const silent: Hop = parseProbe('PING 203.0.113.2 (203.0.113.2) 56(84) bytes of data.\n\n--- 203.0.113.2 ping statistics ---\n1 packets transmitted, 0 received, 100% packet loss, time 0ms\n');
  assert.equal(silent, null);
  assert.equal(parseProbe('From not-an-address icmp_seq=1 Time to live exceeded\n'), null);
});
