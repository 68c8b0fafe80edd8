import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commandScript } from '../../../../src/lab/vm/guest-init.js';
import { guestEnv } from '../../../../src/lab/vm/run.js';
import { MAX_SCALE, median, scalesFromStartTimes, startTimesFromEnv } from '../../../../src/lab/vm/scale.js';
import { scaled, windowed, windowScale } from '../../../../src/lab/time-scale.js';

const host = { nodeMs: 100, cliMs: 520, loopMs: 30 };

test('deadlines follow the slowest ratio, windows a running process alone; with headroom, rounded up', () => {
  // node 25x, the CLI 40x, the loop 10x: the CLI decides deadlines (40 x 1.5 = 60), the loop windows (10 x 1.5 = 15).
  assert.deepEqual(scalesFromStartTimes(host, { nodeMs: 2500, cliMs: 20_800, loopMs: 300 }), { deadline: 60, window: 15 });
  // node 30x, the CLI 10x, the loop 20x: node decides deadlines.
  assert.deepEqual(scalesFromStartTimes(host, { nodeMs: 3000, cliMs: 5200, loopMs: 600 }), { deadline: 45, window: 30 });
  // A window is never longer than a deadline (the loop the slowest: it decides both).
  assert.deepEqual(scalesFromStartTimes(host, { nodeMs: 200, cliMs: 1040, loopMs: 900 }), { deadline: 45, window: 45 });
  assert.deepEqual(scalesFromStartTimes(host, { nodeMs: 101, cliMs: 521, loopMs: 30 }), { deadline: 2, window: 2 }, 'a fraction rounds up');
});

test('windows stretch by the window scale, and by the time scale where none is set', () => {
  assert.equal(windowed(700, { WGP2P_LAB_TIME_SCALE: '65', WGP2P_LAB_WINDOW_SCALE: '14' }), 9800);
  assert.equal(scaled(700, { WGP2P_LAB_TIME_SCALE: '65', WGP2P_LAB_WINDOW_SCALE: '14' }), 45_500);
  assert.equal(windowScale({ WGP2P_LAB_TIME_SCALE: '10' }), 10);
  assert.equal(windowScale({ WGP2P_LAB_TIME_SCALE: '10', WGP2P_LAB_WINDOW_SCALE: '0' }), 10, 'an unusable window scale is ignored');
  assert.equal(windowScale({}), 1);
});

test('the time scale stays within what the lab accepts (1-100), and unusable figures give none', () => {
  assert.deepEqual(scalesFromStartTimes(host, { nodeMs: 50, cliMs: 200, loopMs: 10 }), { deadline: 1, window: 1 }, 'a guest faster than the host never shortens anything');
  assert.deepEqual(scalesFromStartTimes(host, { nodeMs: 10_000, cliMs: 70_000, loopMs: 3000 }), { deadline: MAX_SCALE, window: MAX_SCALE });
  assert.equal(scalesFromStartTimes({ nodeMs: 0, cliMs: 520, loopMs: 30 }, { nodeMs: 2500, cliMs: 20_000, loopMs: 300 }), undefined);
  assert.equal(scalesFromStartTimes(host, { nodeMs: NaN, cliMs: 20_000, loopMs: 300 }), undefined);
  assert.equal(scalesFromStartTimes(host, { nodeMs: 2500, cliMs: 20_000, loopMs: 0 }), undefined);
});

test('the host start times travel to the guest in its environment, and only then does it measure', () => {
  const env = guestEnv({ HOME: '/root' }, {}, { nodeMs: 98.6, cliMs: 520.2, loopMs: 0.3 });
  assert.deepEqual(env, { WGP2P_DATA_PLANE: 'kernel', WGP2P_VM_HOST_NODE_MS: '99', WGP2P_VM_HOST_CLI_MS: '520', WGP2P_VM_HOST_LOOP_MS: '1' });
  assert.deepEqual(startTimesFromEnv(env), { nodeMs: 99, cliMs: 520, loopMs: 1 });
  assert.equal(startTimesFromEnv({ WGP2P_VM_HOST_NODE_MS: '99', WGP2P_VM_HOST_CLI_MS: '520' }), undefined);
  assert.equal(startTimesFromEnv({ WGP2P_VM_HOST_NODE_MS: 'x', WGP2P_VM_HOST_CLI_MS: '520', WGP2P_VM_HOST_LOOP_MS: '30' }), undefined);
  assert.equal(guestEnv({}, {}).WGP2P_LAB_TIME_SCALE, '10', 'without host figures: the fallback');
  assert.equal(guestEnv({ WGP2P_LAB_TIME_SCALE: '30' }, {}).WGP2P_LAB_TIME_SCALE, '30', "the caller's scale wins");
  const script = commandScript(['node', '-e', '0'], '/w', '/w/dist/src/lab/vm/guest-scale.js');
  assert.ok(script.includes(`if [ -z "\${WGP2P_LAB_TIME_SCALE:-}" ]; then\n  scales=$(node '/w/dist/src/lab/vm/guest-scale.js') || scales='10 10'\n  export WGP2P_LAB_TIME_SCALE="\${scales% *}" WGP2P_LAB_WINDOW_SCALE="\${scales#* }"\nfi\n`), script);
  assert.ok(script.indexOf('guest-scale') < script.indexOf("exec 'node'"), 'measured before the command');
});

test('median', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.ok(Number.isNaN(median([])));
});
