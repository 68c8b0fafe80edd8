import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IpAddress } from '../../../../src/core/net/address.js';
import { checkEpoch } from '../../../../src/core/portmap/epoch.js';
import { decodePcpAnnounce, decodePcpMap, encodePcpAnnounce, encodePcpMap, PCP_MAX_MESSAGE } from '../../../../src/core/portmap/pcp.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/[\s|]/g, ''), 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const nonce = hex('0102030405060708090a0b0c');
const client = IpAddress.parse('192.168.10.2');

// RFC 6887 figure 2 (request header) + figure 9 (MAP opcode data), field by field.
const MAP_REQUEST =
  '02 01 0000' + //                       version 2, R=0 opcode 1 (MAP), reserved
  '00001c20' + //                         requested lifetime 7200 s
  '00000000 00000000 0000ffff c0a80a02' + // client address ::ffff:192.168.10.2
  '0102030405060708090a0b0c' + //         mapping nonce
  '11 000000' + //                        protocol 17 (UDP), reserved
  'ca6c ca6c' + //                        internal port 51820, suggested external port 51820
  '00000000 00000000 0000ffff 00000000'; // suggested external address: ::ffff:0.0.0.0 (any)

/** A MAP response as RFC 6887 figure 3 + figure 9 lay it out. */
function mapResponse(o: { version?: number; r?: boolean; opcode?: number; result?: number; lifetime?: number; epoch?: number; nonce?: string; protocol?: number; internal?: number; external?: number; address?: string; tail?: string } = {}): Uint8Array {
  const h = (n: number, bytes: number) => n.toString(16).padStart(bytes * 2, '0');
  return hex(
    h(o.version ?? 2, 1) + h(((o.r ?? true) ? 0x80 : 0) | (o.opcode ?? 1), 1) + '00' + h(o.result ?? 0, 1) +
      h(o.lifetime ?? 7200, 4) + h(o.epoch ?? 1000, 4) + '00'.repeat(12) +
      (o.nonce ?? '0102030405060708090a0b0c') + h(o.protocol ?? 17, 1) + '000000' + h(o.internal ?? 51820, 2) + h(o.external ?? 40123, 2) +
      (o.address ?? '00000000000000000000ffffc0000305') + (o.tail ?? ''),
  );
}
const expect = { nonce, internalPort: 51820 };

test('PCP MAP request: the RFC 6887 header and MAP layout byte for byte, IPv4 as ::ffff:a.b.c.d', () => {
  const b = encodePcpMap({ client, nonce, internalPort: 51820, suggestedPort: 51820, lifetimeS: 7200 });
  assert.equal(b.length, 60, '24-byte header + 36-byte MAP data, no options');
  assert.equal(toHex(b), toHex(hex(MAP_REQUEST)));
  const del = encodePcpMap({ client, nonce, internalPort: 51820, suggestedPort: 0, lifetimeS: 0 });
  assert.equal(toHex(del.slice(4, 8)), '00000000', 'a delete is the same nonce with lifetime 0');
  assert.throws(() => encodePcpMap({ client, nonce: nonce.slice(1), internalPort: 1, suggestedPort: 0, lifetimeS: 1 }), /12 bytes/);
  assert.throws(() => encodePcpMap({ client, nonce, internalPort: 0, suggestedPort: 0, lifetimeS: 1 }), /every port/);
});

test('PCP ANNOUNCE request is the bare header with lifetime 0', () => {
  assert.equal(toHex(encodePcpAnnounce(client)), toHex(hex('02000000 00000000 00000000 00000000 0000ffff c0a80a02')));
});

test('PCP MAP response: the assigned port and address are read, another port than asked for is fine', () => {
  const r = decodePcpMap(mapResponse(), expect);
  assert.ok(r.ok, r.ok ? '' : r.problem);
  assert.equal(r.value.externalPort, 40123);
  assert.equal(r.value.externalAddress.toString(), '192.0.3.5', 'an IPv4-mapped address is the IPv4 address it carries');
  assert.equal(r.value.externalAddress.family, 4);
  assert.equal(r.value.lifetimeS, 7200);
  assert.equal(r.value.epochS, 1000);
  const withOption = decodePcpMap(mapResponse({ tail: '01 00 0010' + '00'.repeat(16) }), expect);
  assert.ok(withOption.ok, 'an option (THIRD_PARTY, 16 bytes) after the MAP data is walked over');
});

test('PCP replies that are not an answer to our request are refused with the reason', () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ['short', mapResponse().slice(0, 20), /shorter than PCP's 24-byte header/],
    ['header only', mapResponse().slice(0, 24), /MAP reply of 24 bytes is shorter than 60/],
    ['NAT-PMP server (version 0)', hex('00800001 00000000'), /version 0, not PCP's 2/],
    ['wrong version', mapResponse({ version: 3 }), /version 3/],
    ['not a response', mapResponse({ r: false }), /R bit clear/],
    ['wrong opcode', mapResponse({ opcode: 2 }), /opcode 2, not 1/],
    ['nonce mismatch', mapResponse({ nonce: 'ffffffffffffffffffffffff' }), /another mapping nonce/],
    ['refused', mapResponse({ result: 2 }), /NOT_AUTHORIZED \(2\)/],
    ['no resources', mapResponse({ result: 8 }), /NO_RESOURCES/],
    ['other protocol', mapResponse({ protocol: 6 }), /protocol 6/],
    ['wrong internal port', mapResponse({ internal: 22 }), /internal port 22, not 51820/],
    ['option runs past the end', mapResponse({ tail: '01 00 0100' }), /more than the reply holds/],
    ['not a multiple of 4', hex(toHex(mapResponse()) + '00'), /multiple of 4/],
    ['too long', new Uint8Array(PCP_MAX_MESSAGE + 4).fill(2), /over PCP's 1100/],
    ['empty', new Uint8Array(0), /shorter/],
  ];
  for (const [name, buf, why] of cases) {
    const r = decodePcpMap(buf, expect);
    assert.equal(r.ok, false, name);
    assert.match(r.ok ? '' : r.problem, why, name);
  }
  const refused = decodePcpMap(mapResponse({ result: 2, epoch: 77 }), expect);
  assert.ok(!refused.ok && refused.resultCode === 2 && refused.epochS === 77, 'a refusal still carries its result code and epoch');
});

test('PCP ANNOUNCE response: its epoch, or a refusal', () => {
  const ok = decodePcpAnnounce(hex('02800000 00000000 000004d2' + '00'.repeat(12)));
  assert.ok(ok.ok && ok.value.epochS === 1234);
  const bad = decodePcpAnnounce(hex('02800004 00000000 000004d2' + '00'.repeat(12)));
  assert.ok(!bad.ok && /UNSUPP_OPCODE/.test(bad.problem));
  assert.ok(!decodePcpAnnounce(mapResponse()).ok, 'a MAP reply is no ANNOUNCE reply');
});

test('epoch (RFC 6887 section 8.5): a reboot or a clock that jumps is lost state; ordinary drift is not', () => {
  const at = { serverS: 5000, clientMs: 1_000_000 };
  assert.ok(checkEpoch(null, at).ok, 'the first reply sets the baseline');
  assert.ok(checkEpoch(at, { serverS: 5060, clientMs: 1_060_000 }).ok, 'both moved 60 s');
  assert.ok(checkEpoch(at, { serverS: 5000, clientMs: 1_000_500 }).ok, 'within rounding');
  assert.ok(checkEpoch(at, { serverS: 5062, clientMs: 1_060_000 }).ok, 'two seconds of rounding and drift');
  const back = checkEpoch(at, { serverS: 3, clientMs: 1_060_000 });
  assert.ok(!back.ok && /went back from 5000 s to 3 s/.test(back.problem), 'epoch going backwards');
  assert.ok(!checkEpoch(at, { serverS: 5010, clientMs: 1_600_000 }).ok, 'server clock moved 10 s in our 600 s: it restarted meanwhile');
  assert.ok(!checkEpoch(at, { serverS: 9000, clientMs: 1_010_000 }).ok, 'server clock jumped ahead');
});
