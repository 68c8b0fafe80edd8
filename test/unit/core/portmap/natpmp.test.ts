import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeNatpmpExternal, decodeNatpmpMapUdp, encodeNatpmpExternal, encodeNatpmpMapUdp } from '../../../../src/core/portmap/natpmp.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('NAT-PMP requests: RFC 6886 sections 3.2 and 3.3 byte for byte', () => {
  assert.equal(toHex(encodeNatpmpExternal()), '0000');
  // version 0, opcode 1 (UDP), reserved, internal 51820, suggested 51820, lifetime 7200
  assert.equal(toHex(encodeNatpmpMapUdp({ internalPort: 51820, suggestedPort: 51820, lifetimeS: 7200 })), '00010000ca6cca6c00001c20');
  assert.equal(toHex(encodeNatpmpMapUdp({ internalPort: 51820, suggestedPort: 0, lifetimeS: 0 })), '00010000ca6c000000000000', 'a delete: lifetime 0, suggested port 0');
  assert.throws(() => encodeNatpmpMapUdp({ internalPort: 0, suggestedPort: 0, lifetimeS: 1 }), /internalPort/);
});

test('NAT-PMP replies: external address, and a mapping on another external port than asked', () => {
  const ext = decodeNatpmpExternal(hex('0080 0000 000003e8 c0000305'));
  assert.ok(ext.ok && ext.value.externalAddress.toString() === '192.0.3.5' && ext.value.epochS === 1000);
  const map = decodeNatpmpMapUdp(hex('0081 0000 000003e8 ca6c 9cbb 00001c20'), { internalPort: 51820 });
  assert.ok(map.ok);
  assert.deepEqual({ ...map.value }, { epochS: 1000, internalPort: 51820, externalPort: 40123, lifetimeS: 7200 });
});

test('NAT-PMP replies that are garbage, refusals or for something else are refused with the reason', () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty', new Uint8Array(0), /too short/],
    ['short', hex('0081 0000 000003e8 ca6c'), /shorter than NAT-PMP's 16/],
    ['PCP server answer', hex('0281 0000'), /version 2, not NAT-PMP's 0/],
    ['a request', hex('0001 0000 ca6cca6c 00001c20 0000 0000'), /a request/],
    ['wrong opcode', hex('0082 0000 000003e8 ca6c 9cbb 00001c20'), /opcode 2, not 1/],
    ['refused', hex('0081 0002 000003e8'), /Not Authorized\/Refused \(2\)/],
    ['out of resources', hex('0081 0004 000003e8 ca6c 0000 00000000'), /Out of resources/],
    ['wrong internal port', hex('0081 0000 000003e8 0016 9cbb 00001c20'), /internal port 22/],
  ];
  for (const [name, buf, why] of cases) {
    const r = decodeNatpmpMapUdp(buf, { internalPort: 51820 });
    assert.equal(r.ok, false, name);
    assert.match(r.ok ? '' : r.problem, why, name);
  }
  const refused = decodeNatpmpMapUdp(hex('0081 0002 0000004d'), { internalPort: 51820 });
  assert.ok(!refused.ok && refused.epochS === 77, 'an 8-byte error reply still carries the epoch');
  assert.ok(!decodeNatpmpExternal(hex('0080 0000 000003e8')).ok, 'external address cut short');
});
