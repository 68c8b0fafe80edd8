import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startExchange, stepExchange, type ExchangeState } from '../../../../src/core/netlink/exchange.js';
import { decodeFamily, familyRequest } from '../../../../src/core/netlink/genl.js';
import {
  attr,
  decodeAcknowledgement,
  decodeAttributes,
  decodeMessages,
  encodeMessage,
  LITTLE_ENDIAN,
  NetlinkError,
  NLM_F_MULTI,
  NLMSG_DONE,
  type NetlinkMessage,
} from '../../../../src/core/netlink/message.js';
import { hex } from './hex.js';

// The fixtures are the kernel's layouts on a little-endian host (x86, arm64, the Raspberry Pi).
const le = { skip: !LITTLE_ENDIAN && 'the byte fixtures are little-endian' };

test('CTRL_CMD_GETFAMILY for "wireguard" is the request the kernel documents (nlmsghdr, genlmsghdr, NUL-terminated name)', le, () => {
  assert.deepEqual(
    familyRequest('wireguard', 1),
    hex(`
      24 00 00 00   # nlmsg_len 36
      10 00         # nlmsg_type GENL_ID_CTRL
      05 00         # NLM_F_REQUEST | NLM_F_ACK
      01 00 00 00   # seq
      00 00 00 00   # pid: the kernel
      03 02 00 00   # CTRL_CMD_GETFAMILY, version 2, reserved
      0e 00 02 00   # nla_len 14, CTRL_ATTR_FAMILY_NAME
      77 69 72 65 67 75 61 72 64 00  00 00  # "wireguard\\0", padding to 4
    `),
  );
});

test('the controller\'s CTRL_CMD_NEWFAMILY answer gives the family id (attributes in any order, unknown ones skipped)', le, () => {
  const [m] = decodeMessages(
    hex(`
      34 00 00 00  10 00  00 00  01 00 00 00  ab 00 00 00   # 52 bytes, from the controller, seq 1
      01 02 00 00                                           # CTRL_CMD_NEWFAMILY
      0e 00 02 00  77 69 72 65 67 75 61 72 64 00 00 00      # CTRL_ATTR_FAMILY_NAME "wireguard"
      06 00 01 00  17 00 00 00                              # CTRL_ATTR_FAMILY_ID 0x17
      08 00 04 00  00 00 00 00                              # CTRL_ATTR_HDRSIZE (not read)
    `),
  );
  assert.equal(m.seq, 1);
  assert.equal(m.pid, 0xab);
  assert.deepEqual(decodeFamily(m.payload), { id: 0x17, name: 'wireguard', version: 0 });
});

test('one datagram holds several messages, each padded to 4 bytes; a length past the end is refused, not read as a short message', () => {
  const a = encodeMessage({ type: 0x17, flags: NLM_F_MULTI, seq: 9, payload: Buffer.from([1, 2, 3, 4, 5]) });
  const b = encodeMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: 9, payload: Buffer.alloc(4) });
  assert.equal(a.length, 24); // 16 + 5, padded
  const ms = decodeMessages(Buffer.concat([a, b]));
  assert.deepEqual(
    ms.map((m) => [m.type, m.seq, [...m.payload]]),
    [
      [0x17, 9, [1, 2, 3, 4, 5]],
      [NLMSG_DONE, 9, [0, 0, 0, 0]],
    ],
  );
  const cut = Buffer.concat([a, b]).subarray(0, 30);
  assert.throws(() => decodeMessages(cut), NetlinkError);
  const lying = Buffer.from(a);
  lying.writeUInt32LE(4, 0); // shorter than a header
  assert.throws(() => decodeMessages(lying), /claims 4 bytes/);
});

test('attributes: padding between them, the NESTED flag masked off the type, a length past the nest refused', () => {
  const nest = attr.nested(8, [attr.u16(6, 51820), attr.string(2, 'wg0')]);
  const [outer] = decodeAttributes(nest);
  assert.equal(outer.type, 8);
  const inner = decodeAttributes(outer.value);
  assert.deepEqual(inner.map((x) => [x.type, x.value.length]), [[6, 2], [2, 4]]);
  const bad = Buffer.from(nest);
  bad.writeUInt16LE(200, 4); // the first child claims more than the nest holds
  assert.throws(() => decodeAttributes(decodeAttributes(bad)[0].value), /claims 200 bytes/);
});

test('NLMSG_ERROR: errno 0 is the ack; a refusal carries the errno and the kernel\'s extended-ack text', le, () => {
  const [ok] = decodeMessages(
    hex(`
      24 00 00 00  02 00  00 01  05 00 00 00  00 00 00 00   # NLMSG_ERROR, NLM_F_CAPPED
      00 00 00 00                                           # error 0
      24 00 00 00  17 00  05 00  05 00 00 00  00 00 00 00   # the request's header only
    `),
  );
  assert.deepEqual(decodeAcknowledgement(ok), { errno: 0 });
  const [refused] = decodeMessages(
    hex(`
      38 00 00 00  02 00  00 03  05 00 00 00  00 00 00 00   # NLMSG_ERROR, CAPPED | ACK_TLVS
      ed ff ff ff                                           # -19 (ENODEV)
      24 00 00 00  17 00  05 00  05 00 00 00  00 00 00 00   # the request's header
      13 00 01 00  6e 6f 20 73 75 63 68 20 64 65 76 69 63 65 00 00  # NLMSGERR_ATTR_MSG "no such device\\0", padded
    `),
  );
  assert.deepEqual(decodeAcknowledgement(refused), { errno: 19, message: 'no such device' });
});

function run(mode: 'dump' | 'ack', ms: NetlinkMessage[]): ExchangeState {
  return ms.reduce((s, m) => stepExchange(s, mode, m, 'test read'), startExchange());
}
const msg = (type: number, flags: number, payload: Buffer): NetlinkMessage => ({ type, flags, seq: 1, pid: 0, payload });
const errno = (e: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(-e, 0);
  return b;
};

test('a dump collects its NLM_F_MULTI parts until NLMSG_DONE; a DONE carrying an errno fails the whole dump', le, () => {
  const part = (n: number) => msg(0x17, NLM_F_MULTI, Buffer.from([n]));
  const waiting = run('dump', [part(1), part(2)]);
  assert.equal(waiting.kind, 'waiting');
  const done = run('dump', [part(1), part(2), msg(NLMSG_DONE, NLM_F_MULTI, errno(0))]);
  assert.equal(done.kind, 'done');
  assert.deepEqual(done.kind === 'done' && done.parts.map((p) => p.payload[0]), [1, 2]);
  const failed = run('dump', [part(1), msg(NLMSG_DONE, NLM_F_MULTI, errno(19))]);
  assert.equal(failed.kind === 'failed' && failed.error.errno, 19);
});

test('a dump the kernel flags as interrupted (NLM_F_DUMP_INTR) ends marked so the reader can read again', le, () => {
  const s = run('dump', [msg(0x17, NLM_F_MULTI | 0x10, Buffer.from([1])), msg(NLMSG_DONE, NLM_F_MULTI, errno(0))]);
  assert.equal(s.kind === 'done' && s.interrupted, true);
});

test('an acknowledged request ends at its NLMSG_ERROR, keeping what came before it', le, () => {
  const ack = msg(2, 0x100, Buffer.concat([errno(0), Buffer.alloc(16)]));
  const s = run('ack', [msg(0x10, 0, Buffer.from([7])), ack]);
  assert.equal(s.kind, 'done');
  assert.deepEqual(s.kind === 'done' && s.parts.map((p) => p.payload[0]), [7]);
  const refused = run('ack', [msg(2, 0x100, Buffer.concat([errno(1), Buffer.alloc(16)]))]);
  assert.match(refused.kind === 'failed' ? refused.error.message : '', /refused by the kernel \(errno 1\)/);
});
