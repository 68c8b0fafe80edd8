import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { address6Arg, familyArg, hubEndpointArg, addressWithPrefixArg, endpointArg, portRangeArg, publicAddressArg, routesArg, subnetArg } from '../../../src/cli/validate.js';

function refuses(fn: () => unknown, ...fragments: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, String(err));
    for (const f of fragments) assert.match(err.message, f);
    return true;
  });
}

test('--endpoint: an IPv4 or bracketed IPv6 address, or a DNS name, with a port; kept as typed', () => {
  for (const ok of ['203.0.113.2:51820', '[2001:db8::2]:51820', '[2001:DB8:0::2]:51820', 'vpn.example.org:51820', 'home.example.org.:51820']) assert.equal(endpointArg(ok), ok);
  refuses(() => endpointArg('nohost'), /"nohost" must be HOST:PORT, e\.g\. 203\.0\.113\.2:51820, \[2001:db8::2\]:51820 or vpn\.example\.org:51820 \(it has no port\)/);
  refuses(() => endpointArg('h:99999'), /must be HOST:PORT.*\(port "99999" is not a number from 1 to 65535\)/);
  refuses(() => endpointArg('2001:db8::2:51820'), /must be HOST:PORT.*IPv6 address needs brackets/);
  refuses(() => endpointArg('[fe80::1%eth0]:51820'), /zone index/);
  refuses(() => endpointArg('[203.0.113.2]:51820'), /brackets are for IPv6 addresses; write 203\.0\.113\.2:PORT/);
  refuses(() => endpointArg('999.0.113.2:51820'), /"999\.0\.113\.2" is not an IPv4 address/);
  refuses(() => endpointArg('bad_name:51820'), /"bad_name" is neither an IP address nor a DNS name/);
});

test('--address (hub tunnel): an IPv4 host address with a prefix of /8 to /30', () => {
  assert.equal(addressWithPrefixArg('10.99.0.1/24'), '10.99.0.1/24');
  refuses(() => addressWithPrefixArg('10.99.0.1'), /must be an IPv4 address with a prefix of \/8 to \/30, e\.g\. 10\.99\.0\.1\/24 \(.*no prefix length/);
  refuses(() => addressWithPrefixArg('10.99.0.1/31'), /it has \/31/);
  refuses(() => addressWithPrefixArg('10.0.0.1/7'), /it has \/7/);
  refuses(() => addressWithPrefixArg('10.99.0.0/24'), /10\.99\.0\.0 is the network or broadcast address of 10\.99\.0\.0\/24; pick a host address/);
  refuses(() => addressWithPrefixArg('fd00:99::1/64'), /the tunnel network is IPv4 for now/);
  refuses(() => addressWithPrefixArg('10.99.0.256/24'), /not an IPv4 address/);
});

test('--proxied-subnet: an IPv4 subnet; --routes: subnets of either family; host bits clear', () => {
  assert.equal(subnetArg('10.98.0.0/24'), '10.98.0.0/24');
  assert.deepEqual(routesArg('192.168.10.0/24, 10.1.0.0/16'), ['192.168.10.0/24', '10.1.0.0/16']);
  refuses(() => subnetArg('10.98.0.1/24'), /must be an IPv4 subnet with host bits clear, e\.g\. 10\.98\.0\.0\/24 \(.*the subnet is 10\.98\.0\.0\/24\)/);
  assert.deepEqual(routesArg('192.168.10.0/24,2001:db8:1::/64'), ['192.168.10.0/24', '2001:db8:1::/64']);
  refuses(() => routesArg('192.168.10.0/24,2001:db8:1::1/64'), /route "2001:db8:1::1\/64" must be a subnet with host bits clear.*the subnet is 2001:db8:1::\/64/);
  refuses(() => subnetArg('fd00::/64'), /IPv6 subnets are not supported here yet/);
});

test('relay run --address: a public address of either family; loopback, link-local, unique-local and private ones are refused with the fix', () => {
  assert.equal(publicAddressArg('203.0.113.7').toString(), '203.0.113.7');
  assert.equal(publicAddressArg('2001:DB8::7').toString(), '2001:db8::7');
  assert.equal(publicAddressArg('2a00:1450:4001::5').family, 6);
  const fix = /this machine's public IPv4 or IPv6 address/;
  refuses(() => publicAddressArg('127.0.0.1'), /"127\.0\.0\.1" is a loopback address/, fix);
  refuses(() => publicAddressArg('::1'), /loopback/, fix);
  refuses(() => publicAddressArg('fe80::1'), /link-local/, fix);
  refuses(() => publicAddressArg('169.254.3.4'), /link-local/, fix);
  refuses(() => publicAddressArg('fd12:3456::1'), /unique-local address \(fc00::\/7\)/, fix);
  refuses(() => publicAddressArg('192.168.1.2'), /private address/, fix);
  refuses(() => publicAddressArg('::'), /unspecified/, fix);
  refuses(() => publicAddressArg('::ffff:203.0.113.7'), /IPv4-mapped .*give the IPv4 address itself \(203\.0\.113\.7\)/);
  refuses(() => publicAddressArg('fe80::1%eth0'), /zone index/, fix);
  refuses(() => publicAddressArg('relay.example.org'), /not an IPv4 address/, fix);
});

test('relay run --ports: MIN-MAX with room for one allocation', () => {
  assert.deepEqual(portRangeArg('52000-52999'), [52000, 52999]);
  refuses(() => portRangeArg('52000'), /must be MIN-MAX/);
  refuses(() => portRangeArg('52000-52000'), /each allocation takes two ports/);
  refuses(() => portRangeArg('0-10'), /1 <= MIN < MAX <= 65535/);
});

test('hub endpoints: IPv4, bracketed IPv6 or a DNS name; an unbracketed IPv6, a zone, link-local, loopback and ULA addresses are refused with the fix', () => {
  assert.equal(hubEndpointArg('203.0.113.2:51820'), '203.0.113.2:51820');
  assert.equal(hubEndpointArg('[2001:db8::2]:51820'), '[2001:db8::2]:51820');
  assert.equal(hubEndpointArg('vpn.example.org:51820'), 'vpn.example.org:51820');
  assert.equal(hubEndpointArg('10.0.0.5:51820'), '10.0.0.5:51820', 'a hub on a private network serves the nodes on it');
  refuses(() => hubEndpointArg('2001:db8::2:51820'), /needs brackets before the port/);
  refuses(() => hubEndpointArg('[fe80::1%eth0]:51820'), /zone index/);
  refuses(() => hubEndpointArg('[fe80::1]:51820'), /a link-local address/, /give the address nodes on the internet reach the hub at/);
  refuses(() => hubEndpointArg('[::1]:51820'), /a loopback address/);
  refuses(() => hubEndpointArg('127.0.0.1:51820'), /a loopback address/);
  refuses(() => hubEndpointArg('[fd00:1::2]:51820'), /a unique-local address/);
});

test('--address6: a /64 of unique-local space, host bits clear', () => {
  assert.equal(address6Arg('fd3c:1a2b:3c4d::/64'), 'fd3c:1a2b:3c4d::/64');
  refuses(() => address6Arg('fd3c:1a2b:3c4d::/48'), /is a \/48; the tunnel's IPv6 network is a \/64/);
  refuses(() => address6Arg('2001:db8::/64'), /not in fd00::\/8; use a unique-local prefix like fd/);
  refuses(() => address6Arg('fc00::/64'), /not in fd00::\/8/);
  refuses(() => address6Arg('fd3c:1a2b:3c4d::1/64'), /must be a \/64 subnet of unique-local space/);
  refuses(() => address6Arg('10.99.0.0/24'), /not an IPv6 subnet/);
  assert.equal(familyArg('6'), 6);
  refuses(() => familyArg('5'), /must be 4 or 6/);
});
