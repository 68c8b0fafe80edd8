import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeSecret } from '../../../src/core/secret-file.js';

test('a secret file is 0600 even where a wider file was before, and nothing is left beside it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-secret-'));
  try {
    const path = join(dir, 'phone.png');
    writeFileSync(path, 'old', { mode: 0o644 });
    writeSecret(path, Buffer.from([0x89, 0x50]));
    assert.equal(statSync(path).mode & 0o777, 0o600, 'issue 10, finding 12 and "writeSecret does not fix the mode of an existing file"');
    assert.deepEqual([...readFileSync(path)], [0x89, 0x50]);
    writeSecret(join(dir, 'new.conf'), '[Interface]\n');
    assert.equal(statSync(join(dir, 'new.conf')).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir).sort(), ['new.conf', 'phone.png'], 'no temporary file left');
  } finally {
    rmSync(dir, { recursive: true });
  }
});
