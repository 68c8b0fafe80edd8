import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startKey } from '../../../src/core/exec-trace.js';

test('a start is counted by program, inside ip netns exec too, and the CLI by its subcommand', () => {
  assert.equal(startKey(['ip', 'netns', 'exec', 'lab-a', 'wg', 'show', 'x', 'dump']), 'wg');
  assert.equal(startKey(['/usr/sbin/nft', '-f', '-']), 'nft');
  assert.equal(startKey([process.execPath, '/w/dist/src/cli/main.js', 'node', 'list', '--dir', '/x', '--json']), 'wgp2p node list');
  assert.equal(startKey([process.execPath, '/w/dist/src/cli/main.js', 'hub', 'init', '--dir', '/x']), 'wgp2p hub init');
  assert.equal(startKey(['ip', 'netns', 'exec', 'n', process.execPath, '/w/dist/src/cli/main.js', 'join', '--code-file', 'f']), 'wgp2p join');
  assert.equal(startKey([process.execPath, '/w/dist/src/lab/probe.js', 'serve']), 'node probe.js');
});
