import { randomInt } from 'node:crypto';
import { replay, runFuzz } from './fuzz-engine.js';
import { fuzzTargets } from './fuzz-targets.js';
import { argNumber, argString, progress } from './stats.js';

/**
 * Feeds generated and mutated inputs to every parser of untrusted input (bench/fuzz-targets.ts)
 * and prints one JSON document: per parser the inputs, refusals, crashes (the first few with
 * their input) and the slowest input. Exits 1 if anything crashed.
 *
 *   node dist/bench/fuzz.js [--inputs 1000000] [--seed N] [--parser NAME] [--max-length BYTES]
 *   node dist/bench/fuzz.js --seed N --parser NAME --index I     replays one input
 */

const seed = argNumber('seed', randomInt(2 ** 31));
const inputs = argNumber('inputs', 1_000_000);
const parser = argString('parser', '');
const index = argNumber('index', -1);
const maxLength = argNumber('max-length', 0) || undefined;
const targets = fuzzTargets();

if (!Number.isInteger(seed) || seed < 0 || !Number.isInteger(inputs) || inputs < 1) {
  progress('--seed must be a non-negative integer and --inputs a positive one');
  process.exit(2);
}

if (index >= 0) {
  const r = replay(targets, seed, parser, index, maxLength);
  process.stdout.write(JSON.stringify({ seed, parser, index, length: r.input.length, ms: r.ms, outcome: r.outcome ?? 'crash', error: r.error, base64: r.input.toString('base64') }, null, 2) + '\n');
  process.exit(r.error === undefined ? 0 : 1);
}

progress(`fuzz: seed ${seed}, ${inputs} inputs over ${parser || `${targets.length} parsers`}`);
const started = performance.now();
const report = runFuzz(targets, { seed, inputs, maxLength, only: parser ? [parser] : undefined, onProgress: (p, done, of) => done > 0 && progress(`${p}: ${done}/${of}`) });
process.stdout.write(JSON.stringify({ ...report, seconds: Math.round((performance.now() - started) / 100) / 10 }, null, 2) + '\n');
process.exit(report.crashes > 0 ? 1 : 0);
