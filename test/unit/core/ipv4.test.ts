import assert from 'node:assert/strict';
import { test } from 'node:test';
import { contains, formatCidr, formatIPv4, isUsableHost, overlaps, parseCidr, parseIPv4, parseSubnet } from '../../../src/core/ipv4.js';

test('parses and formats IPv4 addresses, rejecting malformed ones', () => {
  assert.equal(formatIPv4(parseIPv4('192.168.1.20')!), '192.168.1.20');
  for (const bad of ['256.1.1.1', '1.2.3', '01.2.3.4', '1.2.3.4.5', 'a.b.c.d', '']) assert.equal(parseIPv4(bad), undefined, bad);
});

test('subnets must have their host bits clear; CIDRs may not', () => {
  assert.equal(parseSubnet('10.0.0.1/24'), undefined);
  assert.equal(formatCidr(parseCidr('10.0.0.1/24')!), '10.0.0.0/24');
  assert.equal(parseCidr('10.0.0.0/33'), undefined);
});

test('containment, overlap and usable hosts', () => {
  const a = parseSubnet('192.168.0.0/16')!;
  const b = parseSubnet('192.168.10.0/24')!;
  assert.ok(overlaps(a, b) && overlaps(b, a));
  assert.ok(!overlaps(b, parseSubnet('192.168.11.0/24')!));
  assert.ok(contains(b, parseIPv4('192.168.10.255')!));
  assert.ok(!isUsableHost(b, parseIPv4('192.168.10.255')!));
  assert.ok(!isUsableHost(b, parseIPv4('192.168.10.0')!));
  assert.ok(isUsableHost(b, parseIPv4('192.168.10.1')!));
});
