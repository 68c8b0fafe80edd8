import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runFuzz, type FuzzTarget } from '../../bench/fuzz-engine.js';
import { fuzzTargets } from '../../bench/fuzz-targets.js';

// The CI slice of bench/fuzz.ts: the same engine and parsers, 20,000 inputs, one fixed seed, and
// inputs of at most 2 KiB (the bench goes to 128 KiB; the long-line findings have their own tests).
test('20,000 fuzzed inputs (seed 20261201) crash none of the parsers of untrusted input', () => {
  const report = runFuzz(fuzzTargets(), { seed: 20261201, inputs: 20_000, maxLength: 2048 });
  const crashed = Object.entries(report.parsers).filter(([, p]) => p.crashes > 0);
  assert.deepEqual(
    crashed.map(([name, p]) => `${name}: ${p.crashes} crashes, first ${JSON.stringify(p.firstCrashes[0])}`),
    [],
    'replay one with: node dist/bench/fuzz.js --seed 20261201 --max-length 2048 --parser NAME --index I',
  );
  assert.ok(report.inputs >= 20_000);
  // Every parser got inputs it refused and inputs it accepted: the mutations reach both sides.
  for (const [name, p] of Object.entries(report.parsers)) assert.ok(p.accepted > 0 && (p.refused > 0 || name === 'uapi-get'), `${name}: ${JSON.stringify(p)}`);
});

test('the engine counts a TypeError as a crash, with its input, and a documented refusal as a refusal', () => {
  const target: FuzzTarget = {
    name: 'toy',
    samples: [Buffer.from('ok')],
    maxLength: 64,
    run(input) {
      if (input.length === 0) throw new TypeError('empty');
      if (input.toString() !== 'ok') return 'refused';
      return 'accepted';
    },
  };
  const report = runFuzz([target], { seed: 7, inputs: 2000 }).parsers.toy;
  assert.equal(report.inputs, 2000);
  assert.ok(report.crashes > 0 && report.refused > 0 && report.accepted > 0, JSON.stringify(report));
  assert.equal(report.firstCrashes[0].error, 'TypeError: empty');
  assert.equal(report.firstCrashes[0].base64, '');
});
