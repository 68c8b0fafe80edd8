import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nestingOver, parseJson } from '../../../src/core/json.js';

test('nesting is counted outside strings only, and the first character past the limit is named', () => {
  assert.equal(nestingOver('{"a":[1,[2]]}', 3), 0);
  assert.equal(nestingOver('{"a":[1,[2]]}', 2), 9);
  // Brackets and escaped quotes inside a string do not count.
  assert.equal(nestingOver('["[[[[\\"[[[["]', 1), 0);
  assert.equal(nestingOver(']]]]{', 1), 0);
});

test('parseJson refuses deep nesting before JSON.parse sees it, and parses the rest as JSON.parse does', () => {
  assert.throws(() => parseJson('['.repeat(100_000)), /brackets nest over 32 deep at character 33/);
  assert.deepEqual(parseJson('{"peers":[{"allowedIps":["10.0.0.0/8"]}]}'), { peers: [{ allowedIps: ['10.0.0.0/8'] }] });
  assert.throws(() => parseJson('{"a":'), SyntaxError);
});
