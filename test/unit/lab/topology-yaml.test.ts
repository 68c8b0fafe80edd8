import assert from 'node:assert/strict';
import { test } from 'node:test';
import YAML from 'yaml';
import { parseYaml } from '../../../src/lab/topology-yaml.js';

test('a topology parses to what the yaml library gives', () => {
  const text = 'name: x\nrouters:\n  - name: home\n    profile: cone\nhosts:\n  - { name: a, router: home }\n  - name: b\n    wan: [203.0.113.2]\n';
  assert.deepEqual(parseYaml(text), YAML.parse(text));
  assert.equal(parseYaml(''), null);
});

test('the first error is reported with where it is, not every error', () => {
  assert.throws(() => parseYaml('name: x\n' + ']\n'.repeat(5000)), /flow-seq-end.*at character 9/);
  assert.throws(() => parseYaml('a: 1\na: 2\n'), /unique.*at character 6/);
});

test('a second document, an oversized mapping or list and deep block nesting are refused before composing', () => {
  assert.throws(() => parseYaml('---\na: 1\n---\nb: 2\n'), /second document/);
  assert.throws(() => parseYaml('a: 1\n'.repeat(3000)), /mapping has over 64 keys/);
  assert.throws(() => parseYaml('- x\n'.repeat(600)), /list has over 512 items/);
  assert.throws(() => parseYaml('- '.repeat(7000) + 'x\n'), /nest over 64 deep/);
});
