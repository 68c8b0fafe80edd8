import assert from 'node:assert/strict';
import { test } from 'node:test';
import { coalesced } from '../../../src/hub/coalesce.js';

test('coalesced: one run at a time; calls during a run share one more run, which starts after it', async () => {
  const log: string[] = [];
  let release!: () => void;
  let runs = 0;
  const run = coalesced(async () => {
    const n = ++runs;
    log.push(`start ${n}`);
    if (n === 1) await new Promise<void>((r) => (release = r));
    log.push(`end ${n}`);
  });
  const first = run();
  await new Promise((r) => setImmediate(r));
  const second = run();
  const third = run();
  assert.equal(second, third, 'calls while a run is going share the next one');
  release();
  await Promise.all([first, second, third]);
  assert.deepEqual(log, ['start 1', 'end 1', 'start 2', 'end 2']);
  await run();
  assert.equal(runs, 3);
});

test('coalesced: a failed run rejects its callers and does not stop the next', async () => {
  let fail = true;
  const run = coalesced(async () => {
    if (fail) throw new Error('boom');
  });
  await assert.rejects(run(), /boom/);
  fail = false;
  await run();
});
