import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GUEST_SECONDS, LinePrefixer, mergeSummaries, parseSummary, renderSummary, splitTestArgv } from '../../../../src/lab/vm/split.js';

const head = ['node', '--test', '--test-concurrency=1', "--test-name-pattern=seed 000"];

test('the files of node --test split into balanced groups, each in the given order, options kept for all', () => {
  const files = ['d/a.test.js', 'd/b.test.js', 'd/c.test.js', 'd/d.test.js', 'd/e.test.js'];
  const weights = { 'a.test.js': 10, 'b.test.js': 7, 'c.test.js': 6, 'd.test.js': 4, 'e.test.js': 3 };
  const s = splitTestArgv([...head, ...files], 2, weights);
  assert.deepEqual(s.head, head);
  // LPT: a(10) | b(7) c(6) -> a+d(14) vs b+c(13) -> e to the lighter.
  assert.deepEqual(s.groups, [['d/a.test.js', 'd/d.test.js'], ['d/b.test.js', 'd/c.test.js', 'd/e.test.js']]);
  assert.deepEqual(s.groups.flat().sort(), files, 'every file runs exactly once');
});

test("test:kernel's files split within 10 % of each other by the measured guest times", () => {
  const files = ['netlink-device', 'truth-table', 'p2p', 'mesh', 'relay-wireguard', 'mesh-hub-failure', 'join'].map((f) => `dist/test/lab/x/${f}.test.js`);
  const s = splitTestArgv([...head, ...files], 2);
  const loads = s.groups.map((g) => g.reduce((sum, f) => sum + GUEST_SECONDS[f.split('/').pop()!], 0));
  assert.equal(s.groups.length, 2);
  assert.ok(Math.abs(loads[0] - loads[1]) / Math.max(...loads) < 0.1, `loads ${loads.join(' / ')}`);
});

test('more guests than files: one file each; an unknown file weighs the median', () => {
  assert.deepEqual(splitTestArgv(['node', '--test', 'x.test.js'], 2).groups, [['x.test.js']]);
  const s = splitTestArgv(['node', '--test', 'new.test.js', 'a.test.js', 'b.test.js', 'c.test.js'], 2, { 'a.test.js': 1, 'b.test.js': 5, 'c.test.js': 9 });
  // new weighs 5 (the median): c(9) | new(5) -> b(5) to new's group (10) -> a(1) to c's (10).
  assert.deepEqual(s.groups, [['a.test.js', 'c.test.js'], ['new.test.js', 'b.test.js']]);
});

test('what --parallel cannot split is refused with the fix', () => {
  assert.throws(() => splitTestArgv(['wgp2p', 'lab', 'demo'], 2), /splits the files of `node --test/);
  assert.throws(() => splitTestArgv(['node', '--test'], 2), /test files named/);
  assert.throws(() => splitTestArgv(['node', '--test', 'a.test.js', '--test-only'], 2), /every option before the test files \(found --test-only/);
});

test("node's closing counts are read from TAP and from the spec reporter, and add up", () => {
  const tap = 'TAP version 13\nok 1 - x\n# Subtest: y\n# tests 9\n# suites 0\n# pass 4\n# fail 1\n# cancelled 0\n# skipped 4\n# todo 0\n# duration_ms 1200.5\n';
  const spec = '\x1b[34mℹ tests 5\x1b[39m\nℹ suites 0\nℹ pass 2\nℹ fail 0\nℹ cancelled 0\nℹ skipped 3\nℹ todo 0\nℹ duration_ms 3000.25\n';
  const a = parseSummary(tap)!;
  const b = parseSummary(spec)!;
  assert.deepEqual(a, { tests: 9, suites: 0, pass: 4, fail: 1, cancelled: 0, skipped: 4, todo: 0, duration_ms: 1200.5 });
  assert.equal(b.tests, 5);
  assert.deepEqual(mergeSummaries([a, b]), { tests: 14, suites: 0, pass: 6, fail: 1, cancelled: 0, skipped: 7, todo: 0, duration_ms: 3000.25 });
  assert.match(renderSummary(mergeSummaries([a, b])), /^# tests 14\n# suites 0\n# pass 6\n# fail 1\n/);
  assert.equal(parseSummary('no summary here\n# a diagnostic\n'), undefined, 'a run that died before its summary has none');
});

test('output is prefixed line by line, a line split across chunks kept whole', () => {
  let got = '';
  const p = new LinePrefixer('[2] ', (t) => (got += t));
  p.push('ok 1 - a\nok 2');
  p.push(' - b\n');
  p.push('tail');
  assert.equal(got, '[2] ok 1 - a\n[2] ok 2 - b\n');
  p.end();
  assert.equal(got, '[2] ok 1 - a\n[2] ok 2 - b\n[2] tail\n');
});
