import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IpAddress } from '../../../src/core/net/address.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { decode, encode, METHOD_BINDING, type StunMessage } from '../../../src/core/stun/message.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ep = (s: string) => Endpoint.parse(s);

// RFC 5769 section 2.2 and 2.3: the sample responses, byte for byte as the RFC prints them.
const TID = hex('b7 e7 a7 01 bc 34 d6 86 fa 87 df ae');
const RFC5769_V4 = hex(`01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 08 00 01 a1 47 e1 12 a6 43
  00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
  80 28 00 04 c0 7d 4c 96`);
const RFC5769_V6 = hex(`01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
  00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
  80 28 00 04 c8 fb 0b 4c`);

test('RFC 5769 sample responses decode to the mapped addresses the RFC names, and their FINGERPRINT checks', () => {
  const v4 = decode(RFC5769_V4);
  assert.ok(v4.ok, v4.ok ? '' : v4.reason);
  assert.equal(v4.message.cls, 'success');
  assert.equal(v4.message.method, METHOD_BINDING);
  assert.deepEqual(v4.message.transactionId, TID);
  assert.equal(v4.message.mapped?.toString(), '192.0.2.1:32853');
  assert.equal(v4.message.fingerprint, true);
  const v6 = decode(RFC5769_V6);
  assert.ok(v6.ok, v6.ok ? '' : v6.reason);
  assert.equal(v6.message.mapped?.toString(), '[2001:db8:1234:5678:11:2233:4455:6677]:32853');
});

test('the XOR-MAPPED-ADDRESS we encode is the RFC 5769 one, byte for byte', () => {
  const b = encode({ cls: 'success', method: METHOD_BINDING, transactionId: TID, mapped: ep('192.0.2.1:32853') });
  assert.deepEqual(b.subarray(0, 2), hex('01 01'), 'Binding success response type');
  assert.deepEqual(b.subarray(4, 20), RFC5769_V4.subarray(4, 20), 'cookie and transaction id');
  assert.deepEqual(b.subarray(20, 32), hex('00 20 00 08 00 01 a1 47 e1 12 a6 43'));
  const b6 = encode({ cls: 'success', method: METHOD_BINDING, transactionId: TID, mapped: ep('[2001:db8:1234:5678:11:2233:4455:6677]:32853') });
  assert.deepEqual(b6.subarray(20, 44), hex('00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9'));
});

test('RFC 5780 attributes round-trip: CHANGE-REQUEST flags, RESPONSE-PORT, OTHER-ADDRESS, PADDING', () => {
  const m: StunMessage = { cls: 'request', method: METHOD_BINDING, transactionId: TID, changePort: true, responsePort: 40123, padding: 40 };
  const b = encode(m);
  // CHANGE-REQUEST with only the "change port" bit (0x02), as RFC 5780 section 7.2 lays it out.
  assert.deepEqual(b.subarray(20, 28), hex('00 03 00 04 00 00 00 02'));
  // RESPONSE-PORT: a 16-bit port and 2 bytes of padding (section 7.5).
  assert.deepEqual(b.subarray(28, 34), hex('00 27 00 02 9c bb'));
  const d = decode(b);
  assert.ok(d.ok);
  assert.equal(d.message.changePort, true);
  assert.equal(d.message.changeIp, false);
  assert.equal(d.message.responsePort, 40123);
  assert.equal(d.message.padding, 40);
  const r = decode(encode({ cls: 'error', method: METHOD_BINDING, transactionId: TID, otherAddress: ep('[2001:db8::2]:3479'), responseOrigin: ep('192.0.3.2:3478'), error: { code: 420, reason: 'Unknown Attribute' }, unknownAttributes: [0x0042] }));
  assert.ok(r.ok);
  assert.equal(r.message.cls, 'error');
  assert.equal(r.message.otherAddress?.toString(), '[2001:db8::2]:3479');
  assert.equal(r.message.responseOrigin?.toString(), '192.0.3.2:3478');
  assert.deepEqual(r.message.error, { code: 420, reason: 'Unknown Attribute' });
  assert.deepEqual(r.message.unknownAttributes, [0x0042]);
  assert.equal(r.message.unknown, undefined, 'every attribute of it was understood');
});

test('malformed datagrams are refused with the reason, never thrown', () => {
  const good = encode({ cls: 'request', method: METHOD_BINDING, transactionId: TID });
  const cases: [Buffer, RegExp][] = [
    [good.subarray(0, 10), /shorter than a STUN header/],
    [Buffer.concat([good, Buffer.alloc(4)]), /does not match/],
    [Buffer.from(good).fill(0xff, 4, 8), /magic cookie/],
    [Buffer.alloc(600), /longer than 548/],
    [(() => { const b = Buffer.from(RFC5769_V4); b[30] ^= 1; return b; })(), /FINGERPRINT does not match/],
    [Buffer.concat([hex('01 01 00 0c 21 12 a4 42'), TID, hex('00 20 00 08 00 07 a1 47 e1 12 a6 43')]), /address family 7/],
    [(() => { const b = Buffer.concat([RFC5769_V4.subarray(0, 20), hex('00 20 00 40 00 01')]); b.writeUInt16BE(8, 2); b.writeUInt16BE(0x0020, 20); return Buffer.concat([b, Buffer.alloc(2)]); })(), /runs past the end/],
  ];
  for (const [b, why] of cases) {
    const d = decode(b);
    assert.equal(d.ok, false);
    if (!d.ok) assert.match(d.reason, why);
  }
  assert.equal(IpAddress.parse('192.0.2.1').family, 4);
});
