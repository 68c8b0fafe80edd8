import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { JOIN_NOTE, removeLeftoverJoin } from '../../../src/agent/join-leftover.js';
import { encodeJoinCode } from '../../../src/core/join-code.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `wgp2p join` without root: wg-quick, wg and ip are stand-ins on PATH that record their
 * arguments. No handshake ever comes (wg prints none), so the join waits in its handshake loop,
 * with the one-time interface "up", until it is signalled.
 */
function fakeTools(root: string): { bin: string; log: string } {
  const bin = join(root, 'bin');
  const log = join(root, 'calls.log');
  mkdirSync(bin);
  for (const tool of ['wg-quick', 'wg', 'ip']) {
    writeFileSync(join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> '${log}'\nexit 0\n`);
    chmodSync(join(bin, tool), 0o755);
  }
  return { bin, log };
}

async function until(what: string, f: () => boolean, child: ChildProcess): Promise<void> {
  // A bound on a wait, not a timing figure: the join's own handshake wait is 8 s.
  for (let i = 0; i < 400; i++) {
    if (f()) return;
    if (child.exitCode !== null) throw new Error(`the join exited (${child.exitCode}) before ${what}`);
    await sleep(20);
  }
  throw new Error(`gave up waiting for ${what}`);
}

const exited = (child: ChildProcess) => new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));

test('a join killed with SIGKILL leaves a note; the next join removes that interface and key; SIGTERM and SIGINT clean up at once (issue 10, join cleanup)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wgp2p-joinclean-'));
  try {
    const { bin, log } = fakeTools(root);
    const tmp = join(root, 'tmp');
    const dir = join(root, 'etc');
    mkdirSync(tmp);
    const codeFile = join(root, 'code');
    const code = { name: 'laptop', hubPublicKey: generateKeyPair().publicKey, hubEndpoints: ['203.0.113.2:51820'], hubAddress: '10.99.0.1', apiPort: 51821, key: generateKeyPair().privateKey, address: '10.99.1.5/24', expiresAt: Date.now() + 60_000 };
    writeFileSync(codeFile, encodeJoinCode(code), { mode: 0o600 });
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, TMPDIR: tmp };
    const start = () => spawn(process.execPath, [CLI, 'join', '--code-file', codeFile, '--dir', dir], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const calls = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
    const joinTmps = () => readdirSync(tmp).filter((f) => f.startsWith('wgp2p-join-'));

    // 1. Killed where no handler runs: the interface and the one-time key stay, and the note says so.
    const first = start();
    await until('the first join brings its tunnel up', () => /wg-quick up .*wgj\d+\.conf/.test(calls()), first);
    const firstIf = `wgj${first.pid! % 1_000_000}`;
    first.kill('SIGKILL');
    await exited(first);
    assert.equal(joinTmps().length, 1, 'SIGKILL left the one-time key behind');
    assert.match(readFileSync(join(dir, JOIN_NOTE), 'utf8'), new RegExp(`"ifname":"${firstIf}"`));

    // 2. The next join removes exactly what the note names, then is stopped by SIGTERM and cleans up after itself.
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      writeFileSync(log, '');
      const next = start();
      let stderr = '';
      next.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const nextIf = `wgj${next.pid! % 1_000_000}`;
      await until('the next join brings its tunnel up', () => calls().includes(`wg-quick up`), next);
      if (signal === 'SIGTERM') {
        assert.ok(calls().includes(`ip link delete dev ${firstIf}\n`), `the first join's interface was removed: ${calls()}`);
        assert.match(stderr, new RegExp(`removed what an interrupted join left behind \\(interface ${firstIf}`));
      }
      assert.equal(joinTmps().length, 1, "the first join's key is gone; only this join's is there");
      next.kill(signal);
      const end = await exited(next);
      assert.equal(end.code, signal === 'SIGTERM' ? 143 : 130, 'the exit says the join was interrupted');
      assert.ok(calls().includes(`ip link delete dev ${nextIf}\n`), `the signalled join took its interface down: ${calls()}`);
      assert.deepEqual(joinTmps(), [], 'and its one-time key');
      assert.deepEqual(readdirSync(dir), [], 'no note, no config: the device can simply join again');
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a note that is not one of ours, or of a join still running, removes nothing and says what to do', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-joinnote-'));
  try {
    const deleted: string[] = [];
    const deleteLink = async (ifname: string) => void deleted.push(ifname);
    assert.equal(await removeLeftoverJoin(dir, deleteLink), undefined, 'no note: nothing to do');
    writeFileSync(join(dir, JOIN_NOTE), JSON.stringify({ pid: 999_999_999, ifname: 'eth0', tmp: '/etc' }));
    await assert.rejects(removeLeftoverJoin(dir, deleteLink), /is not a note of an earlier join \(ifname: must be a one-time join interface \(wgjPID\)\); remove it if no "wgp2p join" is running/);
    // A note naming a directory that is not a join's own: the interface goes, the directory stays.
    const other = mkdtempSync(join(tmpdir(), 'not-a-join-'));
    writeFileSync(join(dir, JOIN_NOTE), JSON.stringify({ pid: 999_999_999, ifname: 'wgj42', tmp: other }));
    assert.equal((await removeLeftoverJoin(dir, deleteLink))?.ifname, 'wgj42');
    assert.ok(existsSync(other), 'a directory outside the join prefix is never removed');
    rmSync(other, { recursive: true });
    // The parent of this test is alive: a join under way is not disturbed.
    writeFileSync(join(dir, JOIN_NOTE), JSON.stringify({ pid: process.ppid, ifname: 'wgj43', tmp: join(tmpdir(), 'wgp2p-join-x') }));
    await assert.rejects(removeLeftoverJoin(dir, deleteLink), new RegExp(`another "wgp2p join" \\(pid ${process.ppid}\\) is under way`));
    assert.deepEqual(deleted, ['wgj42']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
