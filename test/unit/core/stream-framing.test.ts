import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { encodeControl, encodeData, FrameBatcher, FrameDecoder, MAX_DATAGRAM, type Frame } from '../../../src/core/stream/framing.js';

function decodeAll(d: FrameDecoder, chunks: Buffer[]): { frames: Frame[]; problem: ReturnType<FrameDecoder['push']> } {
  const frames: Frame[] = [];
  let problem;
  for (const c of chunks) {
    problem = d.push(c, (f) => frames.push(f.type === 'data' ? { ...f, datagram: Buffer.from(f.datagram) } : f));
    if (problem) break;
  }
  return { frames, problem };
}

/** The same bytes cut at every `step` bytes. */
function cut(buf: Buffer, step: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += step) out.push(buf.subarray(i, i + step));
  return out;
}

describe('stream framing', () => {
  test('a DATA frame is length, type 0, channel, datagram (big-endian)', () => {
    const f = encodeData(0x0102, Buffer.from([0xaa, 0xbb]));
    assert.deepEqual([...f], [0x00, 0x05, 0x00, 0x01, 0x02, 0xaa, 0xbb]);
    const c = encodeControl('{}');
    assert.deepEqual([...c], [0x00, 0x03, 0x01, 0x7b, 0x7d]);
  });

  test('frames come out whole and in order whatever the chunking: coalesced, split, one byte at a time', () => {
    const datagrams = [randomBytes(148), randomBytes(1452), randomBytes(32), randomBytes(MAX_DATAGRAM), randomBytes(1)];
    const stream = Buffer.concat([encodeControl('{"type":"hello"}'), ...datagrams.map((d, i) => encodeData(i, d))]);
    for (const step of [stream.length, 1, 2, 3, 7, 1451, 1460, 4096]) {
      const { frames, problem } = decodeAll(new FrameDecoder(), cut(stream, step));
      assert.equal(problem, undefined, `step ${step}`);
      assert.equal(frames.length, 6, `step ${step}`);
      assert.deepEqual(frames[0], { type: 'control', text: '{"type":"hello"}' });
      frames.slice(1).forEach((f, i) => {
        assert.ok(f.type === 'data');
        assert.equal(f.channel, i);
        assert.ok(f.datagram.equals(datagrams[i]), `step ${step}, datagram ${i}`);
      });
    }
  });

  test('a split frame holds no more than itself, and a length over the cap is refused on its two bytes', () => {
    const d = new FrameDecoder();
    const frame = encodeData(1, randomBytes(1400));
    d.push(frame.subarray(0, 700), () => assert.fail('incomplete'));
    assert.equal(d.buffered, 700);
    const over = new FrameDecoder({ maxDatagram: 1500, maxControl: 1000 });
    const problem = over.push(Buffer.from([0xff, 0xff]), () => assert.fail('no frame'));
    assert.deepEqual(problem, { kind: 'oversized', length: 0xffff, max: 1503 });
    assert.equal(over.buffered, 0);
    // Once failed, it reads nothing more, even valid frames.
    assert.deepEqual(over.push(encodeData(0, Buffer.alloc(4)), () => assert.fail('after failure')), problem);
  });

  test('a datagram over the cap within a valid length is refused as oversized', () => {
    const d = new FrameDecoder({ maxDatagram: 100, maxControl: 4096 });
    const { frames, problem } = decodeAll(d, [encodeData(0, Buffer.alloc(100)), encodeData(0, Buffer.alloc(101))]);
    assert.equal(frames.length, 1);
    assert.deepEqual(problem, { kind: 'oversized', length: 101, max: 100 });
  });

  test('garbage is named: a zero length, an unknown type, a DATA frame without its channel, HTTP bytes', () => {
    const cases: [Buffer, RegExp][] = [
      [Buffer.from([0, 0]), /length 0/],
      [Buffer.from([0, 2, 0x07, 0]), /unknown frame type 0x07/],
      [Buffer.from([0, 2, 0x00, 0]), /without its channel/],
      // An HTTP request where frames were expected: "GE" reads as a length of 18,245.
      [Buffer.from('GET / HTTP/1.1\r\n'), /oversized 18245/],
    ];
    for (const [bytes, why] of cases) {
      const p = new FrameDecoder().push(bytes, () => assert.fail('no frame'));
      assert.ok(p, bytes.toString('hex'));
      assert.match(p.kind === 'garbage' ? p.why : `oversized ${p.length}`, why, bytes.toString('hex'));
    }
  });

  test('one byte at a time through 150 KB of frames stays linear (no rescans): every datagram arrives', () => {
    const d = new FrameDecoder();
    const frames = Array.from({ length: 100 }, (_, i) => encodeData(i % 3, Buffer.alloc(1452, i & 0xff)));
    const stream = Buffer.concat(frames);
    let n = 0;
    let problems = 0;
    for (let i = 0; i < stream.length; i++) if (d.push(stream.subarray(i, i + 1), () => n++)) problems++;
    assert.equal(problems, 0);
    assert.equal(n, 100);
    assert.equal(d.buffered, 0);
  });
});

describe('frame batcher', () => {
  function sink(queued = 0) {
    const writes: Buffer[] = [];
    return { writes, s: { queued, write: (b: Buffer) => writes.push(b) } };
  }

  test('datagrams pushed in one turn leave as one write, decodable in order', () => {
    const { writes, s } = sink();
    const pending: (() => void)[] = [];
    const b = new FrameBatcher(s, { schedule: (fn) => pending.push(fn) });
    for (let i = 0; i < 10; i++) b.data(i, Buffer.alloc(100, i));
    b.control('{"type":"x"}');
    assert.equal(writes.length, 0);
    assert.equal(pending.length, 1, 'one flush scheduled for the whole batch');
    pending[0]();
    assert.equal(writes.length, 1);
    const { frames } = decodeAll(new FrameDecoder(), writes);
    assert.equal(frames.length, 11);
    assert.deepEqual(frames.map((f) => (f.type === 'data' ? f.channel : -1)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1]);
  });

  test('a batch that reaches maxBatch is written at once', () => {
    const { writes, s } = sink();
    const b = new FrameBatcher(s, { maxBatch: 3000, schedule: () => undefined });
    b.data(0, Buffer.alloc(1452));
    b.data(0, Buffer.alloc(1452));
    assert.equal(writes.length, 0);
    b.data(0, Buffer.alloc(1452));
    assert.equal(writes.length, 1);
  });

  test('a full sink drops datagrams (counted) instead of queueing them; control messages still go', () => {
    const { writes, s } = sink(1 << 20);
    const b = new FrameBatcher(s, { maxQueued: 512 * 1024, schedule: (fn) => fn() });
    assert.equal(b.data(0, Buffer.alloc(100)), false);
    assert.equal(b.dropped, 1);
    b.control('{}');
    assert.equal(writes.length, 1);
  });
});
