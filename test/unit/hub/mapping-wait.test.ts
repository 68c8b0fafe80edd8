import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MappingWait, WAIT_MS } from '../../../src/hub/mapping-wait.js';
import { FakeClock } from '../fake-clock.js';

test("a new node's first attempts wait for its router's first answer, at most WAIT_MS, and only once", async () => {
  const clock = new FakeClock();
  const settled: string[] = [];
  const w = new MappingWait(clock, (k) => settled.push(k));
  assert.equal(w.report('a', true, true), false);
  assert.equal(w.pending('a'), true);
  assert.equal(w.report('a', true, false), false, 'a second pending hello changes nothing');
  assert.equal(w.report('a', false, false), true, 'the answer ends the wait');
  assert.deepEqual(settled, ['a']);
  assert.equal(w.pending('a'), false);
  assert.equal(w.report('a', false, false), false, 'told once');

  w.report('b', true, true);
  await clock.advance(WAIT_MS - 1);
  assert.equal(w.pending('b'), true);
  await clock.advance(1);
  assert.equal(w.pending('b'), false, 'a router that stays silent is not waited for');
  assert.deepEqual(settled, ['a', 'b']);

  w.report('c', true, false);
  assert.equal(w.pending('c'), false, 'a node that is no longer new never waits');
  w.report('d', false, true);
  assert.equal(w.pending('d'), false);
  w.report('e', true, true);
  w.forget('e');
  await clock.advance(WAIT_MS);
  assert.deepEqual(settled, ['a', 'b'], 'a node that went away settles nothing');
});
