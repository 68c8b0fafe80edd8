import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commandScript } from '../../../../src/lab/vm/guest-init.js';
import { guestEnv } from '../../../../src/lab/vm/run.js';
import { MAX_SCALE, median, scaleFromStartTimes, startTimesFromEnv } from '../../../../src/lab/vm/scale.js';

const host = { nodeMs: 100, cliMs: 520 };

test('the time scale follows the slower of the two start ratios, with headroom, rounded up', () => {
  // node 25x, the CLI 40x: the CLI decides; 40 x 1.5 = 60.
  assert.equal(scaleFromStartTimes(host, { nodeMs: 2500, cliMs: 20_800 }), 60);
  // node 30x, the CLI 10x: node decides.
  assert.equal(scaleFromStartTimes(host, { nodeMs: 3000, cliMs: 5200 }), 45);
  assert.equal(scaleFromStartTimes(host, { nodeMs: 101, cliMs: 521 }), 2, 'a fraction rounds up');
});

test('the time scale stays within what the lab accepts (1-100), and unusable figures give none', () => {
  assert.equal(scaleFromStartTimes(host, { nodeMs: 50, cliMs: 200 }), 1, 'a guest faster than the host never shortens deadlines');
  assert.equal(scaleFromStartTimes(host, { nodeMs: 10_000, cliMs: 70_000 }), MAX_SCALE);
  assert.equal(scaleFromStartTimes({ nodeMs: 0, cliMs: 520 }, { nodeMs: 2500, cliMs: 20_000 }), undefined);
  assert.equal(scaleFromStartTimes(host, { nodeMs: NaN, cliMs: 20_000 }), undefined);
});

test('the host start times travel to the guest in its environment, and only then does it measure', () => {
  const env = guestEnv({ HOME: '/root' }, {}, { nodeMs: 98.6, cliMs: 520.2 });
  assert.deepEqual(env, { WGP2P_DATA_PLANE: 'kernel', WGP2P_VM_HOST_NODE_MS: '99', WGP2P_VM_HOST_CLI_MS: '520' });
  assert.deepEqual(startTimesFromEnv(env), { nodeMs: 99, cliMs: 520 });
  assert.equal(startTimesFromEnv({ WGP2P_VM_HOST_NODE_MS: '99' }), undefined);
  assert.equal(startTimesFromEnv({ WGP2P_VM_HOST_NODE_MS: 'x', WGP2P_VM_HOST_CLI_MS: '520' }), undefined);
  assert.equal(guestEnv({}, {}).WGP2P_LAB_TIME_SCALE, '10', 'without host figures: the fallback');
  assert.equal(guestEnv({ WGP2P_LAB_TIME_SCALE: '30' }, {}).WGP2P_LAB_TIME_SCALE, '30', "the caller's scale wins");
  const script = commandScript(['node', '-e', '0'], '/w', '/w/dist/src/lab/vm/guest-scale.js');
  assert.match(script, /if \[ -z "\$\{WGP2P_LAB_TIME_SCALE:-\}" \]; then\n {2}WGP2P_LAB_TIME_SCALE=\$\(node '\/w\/dist\/src\/lab\/vm\/guest-scale\.js'\) \|\| WGP2P_LAB_TIME_SCALE=10\n/);
  assert.ok(script.indexOf('guest-scale') < script.indexOf("exec 'node'"), 'measured before the command');
});

test('median', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.ok(Number.isNaN(median([])));
});
