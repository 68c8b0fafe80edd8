import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run } from '../../../src/core/exec.js';
import { LAB_NS_PREFIX } from '../../../src/lab/lab.js';
import { listNamespaces } from '../../../src/lab/netns.js';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const TOPOLOGY = fileURLToPath(new URL('../../../../topologies/seed000.yaml', import.meta.url));

const labNamespaces = async (lab: string) => (await listNamespaces()).filter((n) => n.startsWith(`${LAB_NS_PREFIX}${lab}-`));
const wgp2p = (args: string[]) => run(process.execPath, [CLI, ...args], { allowFail: true, timeoutMs: 120_000 });

test('lab up of the seed-000 topology, status, exec, then down leaves nothing behind', async () => {
  try {
    const up = await wgp2p(['lab', 'up', TOPOLOGY]);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /seed000\s+device\s+host\s+devhome\s+192\.168\.10\.2\s+203\.0\.113\.10\s+restricted/);
    const status = JSON.parse((await wgp2p(['lab', 'status', 'seed000', '--json'])).stdout) as { node: string; up: boolean }[];
    assert.deepEqual(status.map((s) => s.node).sort(), ['cafe', 'client', 'devhome', 'device', 'hub', 'laptop', 'mobile', 'office']);
    assert.ok(status.every((s) => s.up));
    const ping = await wgp2p(['lab', 'exec', 'client', '--lab', 'seed000', '--', 'ping', '-c1', '-W2', '203.0.113.2']);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.equal((await labNamespaces('seed000')).length, 9, 'the internet, 4 routers, 4 hosts');
  } finally {
    const down = await wgp2p(['lab', 'down', 'seed000']);
    assert.equal(down.code, 0, down.stderr);
  }
  assert.deepEqual(await labNamespaces('seed000'), []);
  assert.ok(!existsSync('/run/wgp2p/labs/seed000.json'));
});

test('a second lab with the same name is refused, the first is untouched', async () => {
  try {
    assert.equal((await wgp2p(['lab', 'up', TOPOLOGY])).code, 0);
    const again = await wgp2p(['lab', 'up', TOPOLOGY]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already up/);
    assert.equal((await labNamespaces('seed000')).length, 9, 'the internet, 4 routers, 4 hosts');
  } finally {
    await wgp2p(['lab', 'down', 'seed000']);
  }
});

test('bad topology and non-root are refused with a message, and nothing is created', async () => {
  const bad = await run(process.execPath, [CLI, 'lab', 'up', '/nonexistent.yaml'], { allowFail: true });
  assert.match(bad.stderr, /cannot read the topology file/);
  const asNobody = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'lab', 'up', TOPOLOGY], { allowFail: true });
  assert.notEqual(asNobody.code, 0);
  assert.match(asNobody.stderr, /must run as root/);
  assert.deepEqual(await labNamespaces('seed000'), []);
});

/** Starts `lab verify`, waits until its lab is fully built and probing, then sends `signals`. */
async function interruptVerify(signals: NodeJS.Signals[]): Promise<{ code: number | null; lab: string }> {
  const child = spawn(process.execPath, [CLI, 'lab', 'verify'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const closed = new Promise<number | null>((r) => child.on('close', r));
  const lab = `verify${child.pid! % 10000}`;
  try {
    const deadline = Date.now() + 60_000;
    while (!/probed/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok((await labNamespaces(lab)).length > 0, 'the verify lab was up before the interrupt');
    for (const sig of signals) {
      child.kill(sig);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { code: await closed, lab };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await closed;
    // Whatever the outcome, leave nothing behind for the next test.
    const leftover = (await labNamespaces(lab)).length;
    if (leftover) await wgp2p(['lab', 'down', lab]);
  }
}

test('Ctrl-C during a long lab run tears the lab down', async () => {
  const { code, lab } = await interruptVerify(['SIGINT']);
  assert.equal(code, 130);
  assert.deepEqual(await labNamespaces(lab), []);
  assert.equal((await run('pgrep', ['-f', `probe.js server`], { allowFail: true })).code, 1, 'no probe server left running');
});

test('a second signal during the teardown does not cut it short (node --test sends its own SIGTERM after the group\'s)', async () => {
  const { code, lab } = await interruptVerify(['SIGTERM', 'SIGTERM']);
  assert.equal(code, 143, 'the process exits by its own handler, not killed by the second signal');
  assert.deepEqual(await labNamespaces(lab), []);
  assert.equal((await run('pgrep', ['-f', `probe.js server`], { allowFail: true })).code, 1, 'no probe server left running');
});
