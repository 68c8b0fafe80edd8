import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeHubConf } from '../../../src/hub/files.js';
import { testHub } from './fixtures.js';

test('hub.conf (the hub\'s private key) is written 0600 by temporary file and rename, also over a wider file that was there (issue 10, Low)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-files-'));
  try {
    const hub = testHub();
    writeFileSync(join(dir, 'hub.conf'), 'old\n', { mode: 0o644 });
    const path = writeHubConf(dir, hub);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.match(readFileSync(path, 'utf8'), new RegExp(`PrivateKey = ${hub.privateKey.replace(/[+/]/g, '\\$&')}`));
    assert.deepEqual(readdirSync(dir), ['hub.conf'], 'no temporary file left beside it');
  } finally {
    rmSync(dir, { recursive: true });
  }
});
