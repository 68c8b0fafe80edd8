import assert from 'node:assert/strict';
import { test } from 'node:test';
import ipaddr from 'ipaddr.js';
import { formatIpv4, formatIpv6, ipv6Groups, ipv6Value, readIpv4, readIpv6 } from '../../../src/core/net/address-text.js';
import { IpAddress } from '../../../src/core/net/address.js';
import { Prefixed } from '../../../src/core/net/cidr.js';

const groups = (text: string): number[] | undefined => {
  const g = readIpv6(text);
  return g === undefined ? undefined : [...g];
};

test('IPv6 text forms of RFC 4291 section 2.2 read to their eight groups', () => {
  // Form 1: all eight groups, leading zeros optional.
  assert.deepEqual(groups('2001:DB8:0:0:8:800:200C:417A'), [0x2001, 0xdb8, 0, 0, 8, 0x800, 0x200c, 0x417a]);
  assert.deepEqual(groups('2001:0db8:0000:0000:0008:0800:200c:417a'), [0x2001, 0xdb8, 0, 0, 8, 0x800, 0x200c, 0x417a]);
  // Form 2: "::" for one run of zero groups, at the start, middle or end.
  assert.deepEqual(groups('2001:DB8::8:800:200C:417A'), [0x2001, 0xdb8, 0, 0, 8, 0x800, 0x200c, 0x417a]);
  assert.deepEqual(groups('FF01::101'), [0xff01, 0, 0, 0, 0, 0, 0, 0x101]);
  assert.deepEqual(groups('::1'), [0, 0, 0, 0, 0, 0, 0, 1]);
  assert.deepEqual(groups('::'), [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(groups('fe80::'), [0xfe80, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(groups('1:2:3:4:5:6:7::'), [1, 2, 3, 4, 5, 6, 7, 0]);
  assert.deepEqual(groups('::2:3:4:5:6:7:8'), [0, 2, 3, 4, 5, 6, 7, 8]);
  // Form 3: a dotted quad in the low 32 bits.
  assert.deepEqual(groups('0:0:0:0:0:FFFF:129.144.52.38'), [0, 0, 0, 0, 0, 0xffff, 0x8190, 0x3426]);
  assert.deepEqual(groups('::FFFF:129.144.52.38'), [0, 0, 0, 0, 0, 0xffff, 0x8190, 0x3426]);
  assert.deepEqual(groups('::13.1.68.3'), [0, 0, 0, 0, 0, 0, 0x0d01, 0x4403]);
  assert.deepEqual(groups('64:ff9b::192.0.2.33'), [0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x221]);
});

test('IPv6 text that is not an address is refused', () => {
  for (const bad of [
    '', ':', ':::', '1:', ':1', '1::2::3', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8::', '::1:2:3:4:5:6:7:8',
    '12345::', 'g::1', '1:2:3:4:5:6:7:8:', '::ffff:1.2.3', '::ffff:1.2.3.4.5', '::ffff:01.2.3.4', '::ffff:256.0.0.1',
    '1:2:3:4:5:6:7:1.2.3.4', '1.2.3.4::', '::1.2.3.4:5', ' ::1', '::1 ', '1:2:3:4:5:6:1.2.3.4:7', 'a'.repeat(46),
  ]) {
    assert.equal(readIpv6(bad), undefined, bad);
  }
});

test('IPv6 output is RFC 5952 section 4: lower case, no leading zeros, the longest zero run (the first of equal ones) as ::, a single zero group as 0', () => {
  const fmt = (t: string) => formatIpv6(readIpv6(t)!);
  assert.equal(fmt('2001:0db8::0001'), '2001:db8::1'); // 4.1
  assert.equal(fmt('2001:db8:0:0:0:0:2:1'), '2001:db8::2:1'); // 4.2.1
  assert.equal(fmt('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1'); // 4.2.2
  assert.equal(fmt('2001:0:0:1:0:0:0:1'), '2001:0:0:1::1'); // 4.2.3, the longest run
  assert.equal(fmt('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1'); // 4.2.3, the first of equal runs
  assert.equal(fmt('2001:DB8::ABCD'), '2001:db8::abcd'); // 4.3
  assert.equal(fmt('::ffff:c000:0201'), '::ffff:192.0.2.1'); // section 5, IPv4-mapped
  assert.equal(fmt('::'), '::');
  assert.equal(fmt('1::'), '1::');
  assert.equal(fmt('::1'), '::1');
});

test('the codec agrees with ipaddr.js on value and RFC 5952 text for many addresses', () => {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
  for (let i = 0; i < 2000; i++) {
    // Mostly zero groups, so that runs of every length and position occur.
    const g = Array.from({ length: 8 }, () => (rnd() % 3 === 0 ? rnd() & 0xffff : 0));
    const text = g.map((x) => x.toString(16)).join(':');
    const ours = readIpv6(text)!;
    const theirs = ipaddr.IPv6.parse(text);
    assert.deepEqual([...ours], theirs.parts, text);
    let v = 0n;
    for (const b of theirs.toByteArray()) v = (v << 8n) | BigInt(b);
    assert.equal(ipv6Value(ours), v, text);
    assert.deepEqual([...ipv6Groups(v)], g, text);
    if (!theirs.isIPv4MappedAddress()) assert.equal(formatIpv6(ours), theirs.toRFC5952String(), text);
  }
});

test('IPv4: four decimal parts 0-255, no leading zeros', () => {
  assert.equal(readIpv4('192.0.2.1'), 0xc0000201);
  assert.equal(readIpv4('255.255.255.255'), 0xffffffff);
  assert.equal(readIpv4('0.0.0.0'), 0);
  assert.equal(formatIpv4(0xc0000201), '192.0.2.1');
  for (const bad of ['', '1.2.3', '1.2.3.4.', '.1.2.3.4', '1..2.3', '01.2.3.4', '256.0.0.1', '1.2.3.4 ', '0x7f.0.0.1', '1.2.3.-4']) {
    assert.equal(readIpv4(bad), -1, bad);
  }
});

test('validating without building gives the same verdict and message as reading', () => {
  for (const t of ['fd00::1', '::', '10.0.0.1', '10.1', 'fe80::1%eth0', '[::1]', '::ffff:1.2.3.999', 'x']) {
    const r = IpAddress.read(t);
    assert.equal(IpAddress.problem(t), typeof r === 'string' ? r : undefined, t);
  }
  for (const t of ['fd00::1/64', '10.0.0.2/24', '10.0.0.2/33', 'fd00::1/129', '::/0', '10.1/8', '10.0.0.1', 'fd00::1/6x']) {
    const r = Prefixed.read(t);
    assert.equal(Prefixed.problem(t), typeof r === 'string' ? r : undefined, t);
  }
});
