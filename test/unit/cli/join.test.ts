import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const damaged = 'wgp2p-join1.eyJub3QiOiJhIGNvZGUifQ';

test('wgp2p join reads the code (a key) from stdin or a 0600 file, so it stays out of ps and shell history (issue 10, finding 5)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-join-'));
  try {
    const viaStdin = spawnSync(process.execPath, [CLI, 'join', '-', '--dir', join(dir, 'etc')], { input: `${damaged}\n`, encoding: 'utf8' });
    assert.notEqual(viaStdin.status, 0);
    assert.match(viaStdin.stderr, /the join code is damaged/, 'the code came in on stdin and was checked');
    assert.doesNotMatch(viaStdin.stderr, /visible to other users/);
    const empty = spawnSync(process.execPath, [CLI, 'join', '-', '--dir', join(dir, 'etc')], { input: '', encoding: 'utf8' });
    assert.match(empty.stderr, /no join code on stdin; run "wgp2p join -" and paste the code, or use --code-file FILE/);
    const file = join(dir, 'code');
    writeFileSync(file, damaged, { mode: 0o644 });
    const wide = spawnSync(process.execPath, [CLI, 'join', '--code-file', file, '--dir', join(dir, 'etc')], { encoding: 'utf8' });
    assert.match(wide.stderr, /must be mode 0600 \(chmod 600 /);
    const inArgv = spawnSync(process.execPath, [CLI, 'join', damaged, '--dir', join(dir, 'etc')], { encoding: 'utf8' });
    assert.match(inArgv.stderr, /visible to other users \(ps\) and stays in your shell history; next time use "wgp2p join -"/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
