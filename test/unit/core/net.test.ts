import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AddressError, IpAddress } from '../../../src/core/net/address.js';
import { Cidr, Prefixed } from '../../../src/core/net/cidr.js';
import { Endpoint, EndpointError, HostPort } from '../../../src/core/net/endpoint.js';

test('IPv4 addresses: four decimal parts only, canonical text, integer value', () => {
  const a = IpAddress.parse('192.0.2.1');
  assert.equal(a.family, 4);
  assert.equal(a.value, 0xc0000201n);
  assert.equal(a.toString(), '192.0.2.1');
  for (const bad of ['10.1', '0x7f.0.0.1', '256.1.1.1', '1.2.3.4.5', '01.2.3.4', '', ' 1.2.3.4', '999.999.999.999']) {
    assert.throws(() => IpAddress.parse(bad), AddressError, bad);
  }
  assert.equal(IpAddress.fromValue(4, 0xc0000201n).toString(), '192.0.2.1');
  assert.equal(a.plus(255).toString(), '192.0.3.0');
});

test('IPv6 addresses: RFC 5952 canonical text (lower case, longest zero run compressed), no zone index, no brackets', () => {
  assert.equal(IpAddress.parse('2001:DB8:0:0:0:0:0:1').toString(), '2001:db8::1');
  assert.equal(IpAddress.parse('2001:db8:0:0:1:0:0:1').toString(), '2001:db8::1:0:0:1', 'RFC 5952 4.2.3: the first of two equal runs');
  assert.equal(IpAddress.parse('fd00:0099:0000::0003').toString(), 'fd00:99::3');
  assert.throws(() => IpAddress.parse('fe80::1%eth0'), /zone index/);
  assert.throws(() => IpAddress.parse('[2001:db8::1]'), /bracketed/);
  assert.throws(() => IpAddress.parse('2001:db8::1::2'), /not an IPv6 address/);
  const mapped = IpAddress.parse('::ffff:192.0.2.7');
  assert.equal(mapped.family, 6);
  assert.equal(mapped.unmapped().toString(), '192.0.2.7', 'a dual-stack socket reports IPv4 peers as mapped addresses');
  assert.equal(IpAddress.parse('2001:db8::1').unmapped().toString(), '2001:db8::1');
});

test('scopes: what may be a public endpoint, what is a LAN address', () => {
  const scope = (t: string) => IpAddress.parse(t).scope();
  assert.equal(scope('192.168.1.2'), 'private');
  assert.equal(scope('10.0.0.1'), 'private');
  assert.equal(scope('172.16.5.4'), 'private');
  assert.equal(scope('100.64.1.1'), 'shared', 'RFC 6598 carrier-grade NAT space');
  assert.equal(scope('127.0.0.1'), 'loopback');
  assert.equal(scope('169.254.1.1'), 'link-local');
  assert.equal(scope('8.8.8.8'), 'public');
  assert.equal(scope('203.0.113.10'), 'public', 'documentation ranges stand for the internet in the lab');
  assert.equal(scope('198.18.0.5'), 'public', 'RFC 2544 space stands for an ISP in the lab');
  assert.equal(scope('2001:db8::5'), 'public');
  assert.equal(scope('2a00:1450::1'), 'public');
  assert.equal(scope('fe80::1'), 'link-local');
  assert.equal(scope('fd12:3456::1'), 'unique-local');
  assert.equal(scope('::1'), 'loopback');
  assert.equal(scope('::'), 'unspecified');
  assert.equal(scope('ff02::1'), 'multicast');
});

test('CIDR maths for both families: contains, overlaps, covers, nth host, size, usable hosts', () => {
  const v4 = Cidr.parse('10.99.0.0/24');
  assert.equal(v4.size, 256n);
  assert.ok(v4.contains(IpAddress.parse('10.99.0.200')));
  assert.ok(!v4.contains(IpAddress.parse('10.99.1.0')));
  assert.ok(!v4.contains(IpAddress.parse('::a63:0')), 'never across families');
  assert.equal(v4.nth(1).toString(), '10.99.0.1');
  assert.equal(v4.offsetOf(IpAddress.parse('10.99.0.7')), 7n);
  assert.ok(!v4.isUsableHost(IpAddress.parse('10.99.0.0')) && !v4.isUsableHost(IpAddress.parse('10.99.0.255')));
  assert.ok(v4.isUsableHost(IpAddress.parse('10.99.0.254')));
  assert.equal(v4.next().toString(), '10.99.1.0/24');
  assert.ok(Cidr.parse('10.0.0.0/8').overlaps(v4) && v4.overlaps(Cidr.parse('10.0.0.0/8')));
  assert.ok(Cidr.parse('10.0.0.0/8').covers(v4) && !v4.covers(Cidr.parse('10.0.0.0/8')));
  assert.ok(!v4.overlaps(Cidr.parse('10.98.0.0/24')));
  assert.throws(() => Cidr.parse('10.99.0.1/24'), /host bits set; the subnet is 10\.99\.0\.0\/24/);
  assert.throws(() => Cidr.parse('10.99.0.0/33'), /prefix length must be 0-32/);
  assert.throws(() => Cidr.parse('10.99.0.0'), /no prefix length/);
  const v6 = Cidr.parse('fd00:99::/64');
  assert.equal(v6.size, 1n << 64n);
  assert.equal(v6.nth(3).toString(), 'fd00:99::3');
  assert.ok(!v6.isUsableHost(IpAddress.parse('fd00:99::')), 'the subnet-router anycast address');
  assert.ok(v6.isUsableHost(IpAddress.parse('fd00:99::ffff:ffff:ffff:ffff')), 'IPv6 has no broadcast address');
  assert.equal(Cidr.of(IpAddress.parse('2001:db8:1:2:3::9'), 48).toString(), '2001:db8:1::/48');
  assert.equal(Cidr.host(IpAddress.parse('2001:db8::1')).toString(), '2001:db8::1/128');
  assert.equal(Cidr.parse('0.0.0.0/0').size, 1n << 32n);
  const p = Prefixed.parse('10.99.0.3/24');
  assert.equal(p.address.toString(), '10.99.0.3');
  assert.equal(p.subnet.toString(), '10.99.0.0/24');
  assert.equal(Prefixed.parse('FD00:99::3/64').toString(), 'fd00:99::3/64');
});

test('endpoints: IPv4 and bracketed IPv6, every refusal names the fix', () => {
  const e4 = Endpoint.parse('192.0.2.1:51820');
  assert.equal(e4.family, 4);
  assert.equal(e4.port, 51820);
  assert.equal(e4.address.toString(), '192.0.2.1');
  const e6 = Endpoint.parse('[2001:DB8::1]:51820');
  assert.equal(e6.family, 6);
  assert.equal(e6.toString(), '[2001:db8::1]:51820', 'written the way wireguard-go writes it');
  assert.equal(JSON.stringify({ e6 }), '{"e6":"[2001:db8::1]:51820"}');
  assert.ok(e6.equals(Endpoint.parse('[2001:db8:0::1]:51820')));
  assert.ok(!e6.equals(e6.withPort(1)));
  const refuse = (text: string, fix: RegExp) => assert.throws(() => Endpoint.parse(text), (err: unknown) => err instanceof EndpointError && fix.test(err.message), text);
  refuse('2001:db8::1:51820', /without brackets: write \[ADDRESS\]:PORT/);
  refuse('[fe80::1%eth0]:51820', /zone index/);
  refuse('192.0.2.1', /no port: write HOST:PORT/);
  refuse('192.0.2.1:0', /out of range/);
  refuse('192.0.2.1:65536', /out of range/);
  refuse('999.1.1.1:5', /not an IPv4 address/);
  refuse('[192.0.2.1]:5', /brackets are for IPv6/);
  refuse('[2001:db8::1]51820', /\[IPV6\]:PORT/);
  refuse('example.org:51820', /not an IPv4 address/);
  assert.equal(Endpoint.tryParse('nonsense'), undefined);
  assert.equal(Endpoint.problem('192.0.2.1:51820'), null);
});

test('host and port as a person types it for the hub: an address of either family or a DNS name', () => {
  assert.equal(HostPort.parse('vpn.example.org:51820').host, 'vpn.example.org');
  assert.equal(HostPort.parse('vpn.example.org:51820').endpoint, undefined);
  assert.equal(HostPort.parse('203.0.113.2:51820').endpoint?.toString(), '203.0.113.2:51820');
  assert.equal(HostPort.parse('[2001:db8::2]:51820').toString(), '[2001:db8::2]:51820');
  assert.throws(() => HostPort.parse('a..b:51820'), /neither an IP address nor a DNS name/);
  assert.throws(() => HostPort.parse('-a.example:51820'), /neither an IP address nor a DNS name/);
  assert.throws(() => HostPort.parse('999.1.1.1:5'), /not an IPv4 address/);
  assert.throws(() => HostPort.parse('2001:db8::2:51820'), /without brackets/);
});

test('schemas: strings on the wire become values, and a refusal carries the parser\'s reason', async () => {
  const { endpointSchema, cidrSchema } = await import('../../../src/core/net/schemas.js');
  const ok = endpointSchema.safeParse('[2001:db8::1]:51820');
  assert.ok(ok.success && ok.data instanceof Endpoint);
  const bad = endpointSchema.safeParse('2001:db8::1:51820');
  assert.ok(!bad.success && /without brackets/.test(bad.error.issues[0].message));
  assert.ok(!cidrSchema.safeParse('10.0.0.1/8').success);
  assert.ok(!endpointSchema.safeParse(42).success);
});

test('IPv4-mapped IPv6 addresses keep their dotted quad, as sockets print them; the embedded IPv4 part is as strict as a bare one', () => {
  // What a dual-stack socket reports for an IPv4 peer (Node, Go and inet_ntop all write it so).
  assert.equal(IpAddress.parse('::ffff:192.0.2.7').toString(), '::ffff:192.0.2.7');
  assert.equal(IpAddress.parse('::FFFF:c000:0207').toString(), '::ffff:192.0.2.7', 'hex form of the same address');
  assert.equal(Endpoint.parse('[::ffff:192.0.2.7]:51820').toString(), '[::ffff:192.0.2.7]:51820');
  assert.equal(IpAddress.fromValue(6, 0xffffc0000207n).toString(), '::ffff:192.0.2.7');
  assert.equal(IpAddress.parse('64:ff9b::c000:207').toString(), '64:ff9b::c000:207', 'only mapped addresses are written mixed');
  for (const bad of ['::ffff:0x7f.0.0.1', '::ffff:010.0.0.1', '::ffff:1.2.3']) assert.throws(() => IpAddress.parse(bad), AddressError, bad);
  assert.equal(IpAddress.parse('1:2:3:4:5:6:1.2.3.4').toString(), '1:2:3:4:5:6:102:304');
});

test('a refused endpoint carries what is wrong as data, for callers that word it for their own context', () => {
  const problem = (text: string) => {
    try {
      HostPort.parse(text);
    } catch (err) {
      assert.ok(err instanceof EndpointError);
      return err.problem;
    }
    return undefined;
  };
  assert.deepEqual(problem(''), { kind: 'empty' });
  assert.deepEqual(problem('nowhere'), { kind: 'no-port' });
  assert.deepEqual(problem('192.0.2.1:0'), { kind: 'port', port: '0' });
  assert.deepEqual(problem('192.0.2.1:x'), { kind: 'port', port: 'x' });
  assert.deepEqual(problem('2001:db8::1:51820'), { kind: 'unbracketed-ipv6' });
  assert.deepEqual(problem('[2001:db8::1]51820'), { kind: 'bracket-syntax' });
  assert.deepEqual(problem('[10.0.0.1]:51820'), { kind: 'bracketed-not-ipv6', host: '10.0.0.1' });
  assert.deepEqual(problem('[fe80::1%eth0]:51820')?.kind, 'address');
  assert.deepEqual(problem('999.1.1.1:5')?.kind, 'address');
  assert.deepEqual(problem('bad_host!:51820'), { kind: 'host', host: 'bad_host!' });
  assert.equal(problem('vpn.example.org:51820'), undefined);
  assert.throws(() => Endpoint.parse('example.org:51820'), (err: unknown) => err instanceof EndpointError && err.problem?.kind === 'host');
});

test('an absolute DNS name (one trailing dot) is a host name, as resolvers and wg-quick take it', () => {
  assert.equal(HostPort.parse('vpn.example.org.:51820').host, 'vpn.example.org.');
  assert.equal(HostPort.parse('vpn.example.org.:51820').toString(), 'vpn.example.org.:51820');
  assert.throws(() => HostPort.parse('vpn.example.org..:51820'), /neither an IP address nor a DNS name/);
  assert.throws(() => HostPort.parse('.:51820'), EndpointError);
});
