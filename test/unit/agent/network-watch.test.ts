import assert from 'node:assert/strict';
import { test } from 'node:test';
import { globalInterfaces } from '../../../src/agent/network-watch.js';

// What iproute2 6.1 prints for `ip -j addr show scope global` on a host whose WireGuard interface
// has an IPv6 tunnel address: the hidden addresses leave empty objects behind.
const OUTPUT = JSON.stringify([
  { ifindex: 1, ifname: 'lo', addr_info: [{}, {}] },
  { ifindex: 2, ifname: 'eth0', addr_info: [
    { family: 'inet', local: '192.168.10.2', prefixlen: 24, scope: 'global' },
    { family: 'inet6', local: '2001:db8:10::2', prefixlen: 64, scope: 'global' },
    { family: 'inet6', local: '2001:db8:10::ab:cd', prefixlen: 64, scope: 'global', temporary: true },
    { family: 'inet6', local: '2001:db8:10::99', prefixlen: 64, scope: 'global', deprecated: true },
    {},
  ] },
  { ifindex: 5, ifname: 'wg-dev', addr_info: [{ family: 'inet', local: '10.99.0.2', prefixlen: 24, scope: 'global' }, { family: 'inet6', local: 'fd3c::2', prefixlen: 64, scope: 'global' }] },
  { ifindex: 6, ifname: 'eth1', addr_info: [{}] },
]);

test('interfaces from `ip -j addr`: both families, the WireGuard interface left out, empty entries skipped, temporary and deprecated IPv6 addresses left out', () => {
  assert.deepEqual(globalInterfaces(OUTPUT, 'wg-dev').map(String), ['192.168.10.2/24', '2001:db8:10::2/64']);
  assert.deepEqual(globalInterfaces('not json', 'x'), []);
  assert.deepEqual(globalInterfaces('[{"ifname": 3}]', 'x'), [], 'an output of another shape gives nothing, never a crash');
});
