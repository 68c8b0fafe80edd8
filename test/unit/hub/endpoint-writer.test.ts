import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { EndpointWriter, type Clock } from '../../../src/hub/endpoint-writer.js';
import type { Observation } from '../../../src/hub/store/model.js';

/** Timers that fire only when the test moves time on. */
class FakeClock implements Clock {
  private t = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.ids;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== handle);
  }
  get pending(): number {
    return this.timers.length;
  }
  /** Moves time on by `ms`, firing due timers in order and letting the promises they start settle. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await settle();
  }
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

const ep = (port: number) => Endpoint.parse(`203.0.113.20:${port}`);

function harness(opts: { fail?: () => boolean; maxBatch?: number } = {}) {
  const clock = new FakeClock();
  const writes: Observation[][] = [];
  const logs: { level: string; msg: string }[] = [];
  const writer = new EndpointWriter({
    clock,
    delayMs: 250,
    retryMs: 1000,
    maxRetryMs: 4000,
    maxBatch: opts.maxBatch,
    log: { warn: (_o, msg) => logs.push({ level: 'warn', msg }), info: (_o, msg) => logs.push({ level: 'info', msg }) },
    write: async (batch) => {
      if (opts.fail?.()) throw new Error('database is locked');
      writes.push([...batch]);
    },
  });
  return { clock, writes, logs, writer };
}

const view = (batch: Observation[]) => batch.map((o) => `${o.publicKey}=${o.endpoint.toString()}`);

test('observations are coalesced: one write per window, the latest endpoint per node', async () => {
  const { clock, writes, writer } = harness();
  writer.record('a', ep(1000));
  writer.record('b', ep(2000));
  writer.record('a', ep(1001));
  await clock.advance(249);
  assert.equal(writes.length, 0, 'nothing before the window ends');
  await clock.advance(1);
  assert.deepEqual(writes.map(view), [['b=203.0.113.20:2000', 'a=203.0.113.20:1001']]);
  assert.equal(writer.backlog, 0);
  assert.equal(clock.pending, 0, 'no timer left when nothing is pending');
  writer.record('a', ep(1002));
  await clock.advance(250);
  assert.deepEqual(writes.map(view).at(-1), ['a=203.0.113.20:1002']);
});

test('a failed write is retried with backoff, logged once, and never loses the latest endpoint', async () => {
  let failing = 3;
  const { clock, writes, logs, writer } = harness({ fail: () => failing-- > 0 });
  writer.record('a', ep(1000));
  writer.record('b', ep(2000));
  await clock.advance(250); // fails (1)
  assert.equal(writes.length, 0);
  assert.equal(writer.backlog, 2, 'the batch is back');
  writer.record('a', ep(1001)); // newer than the failed batch's
  await clock.advance(1000); // fails (2)
  await clock.advance(1999);
  assert.equal(writes.length, 0, 'the second retry waits twice as long');
  await clock.advance(1); // fails (3)
  await clock.advance(4000); // succeeds, at the cap
  assert.deepEqual(writes.map((b) => view(b).sort()), [['a=203.0.113.20:1001', 'b=203.0.113.20:2000']]);
  assert.deepEqual(
    logs.map((l) => l.level),
    ['warn', 'info'],
    'one warning for the run of failures, one line when it works again',
  );
  assert.match(logs[0].msg, /could not record observed endpoints; retrying/);
  assert.equal(writer.backlog, 0);
});

test('recording never waits: while a write is in flight new observations gather for the next one, in batches of at most maxBatch', async () => {
  const { clock, writes, writer } = harness({ maxBatch: 2 });
  for (const k of ['a', 'b', 'c', 'd', 'e']) writer.record(k, ep(1000));
  await clock.advance(250);
  assert.deepEqual(writes.map((b) => b.map((o) => o.publicKey)), [['a', 'b'], ['c', 'd'], ['e']], 'the backlog goes out at once, in batches');
  writer.record('a', ep(1001));
  writer.record('a', ep(1002));
  await clock.advance(250);
  assert.deepEqual(writes.at(-1)!.map((o) => o.endpoint.port), [1002]);
});

test('close writes what is pending; later observations are ignored', async () => {
  const { clock, writes, writer } = harness();
  writer.record('a', ep(1000));
  await writer.close();
  assert.deepEqual(writes.map(view), [['a=203.0.113.20:1000']]);
  writer.record('b', ep(2000));
  await clock.advance(10_000);
  assert.equal(writes.length, 1);
});
