import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { addNode, hashToken } from '../../../src/hub/directory.js';
import { openStore } from '../../../src/hub/store/store.js';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const wgp2p = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, WGP2P_LOG: 'silent' } });

/** What a `node add` killed after its store commit and before its files leaves: the node in the store, no files. */
async function killedAfterCommit(hub: string, name: string, kind: 'agent' | 'client'): Promise<void> {
  const store = await openStore(hub);
  try {
    await addNode(store, { name, kind });
  } finally {
    await store.close();
  }
}

test('node add killed between the store and its files: running it again writes the files (a new token for an agent), and nothing else is taken (issue 10, Low)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-recover-'));
  const hub = join(dir, 'hub');
  try {
    assert.equal(wgp2p('hub', 'init', '--dir', hub, '--endpoint', '203.0.113.2:51820', '--address', '10.99.0.1/24', '--json').status, 0);

    await killedAfterCommit(hub, 'laptop', 'agent');
    const again = wgp2p('node', 'add', 'laptop', '--agent', '--dir', hub, '--json');
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /node laptop was in the store without its files .*writing them now, with a new token/);
    const agentFile = join(hub, 'nodes', 'laptop.agent.json');
    const cfg = JSON.parse(readFileSync(agentFile, 'utf8')) as { token: string };
    assert.equal(statSync(agentFile).mode & 0o777, 0o600);
    const store = await openStore(hub);
    try {
      const dev = (await store.node('laptop'))!;
      assert.equal(dev.tokenHash, hashToken(cfg.token), 'the token in the file is the one the hub accepts');
      assert.equal(dev.address.toString(), '10.99.0.2', 'it keeps its address');
    } finally {
      await store.close();
    }

    // Files there: a second `node add` of the name is refused as before, and the token stays.
    const twice = wgp2p('node', 'add', 'laptop', '--agent', '--dir', hub);
    assert.notEqual(twice.status, 0);
    assert.match(twice.stderr, /a node named "laptop" already exists/);
    assert.equal((JSON.parse(readFileSync(agentFile, 'utf8')) as { token: string }).token, cfg.token);

    // A client: its configs again, with the key in the store.
    await killedAfterCommit(hub, 'phone', 'client');
    const phone = wgp2p('node', 'add', 'phone', '--client', '--dir', hub);
    assert.equal(phone.status, 0, phone.stderr);
    assert.ok(existsSync(join(hub, 'nodes', 'phone.conf')) && existsSync(join(hub, 'nodes', 'phone.proxied.conf')));

    // Asked as another kind: not the node that was half made.
    await killedAfterCommit(hub, 'pi', 'agent');
    assert.match(wgp2p('node', 'add', 'pi', '--client', '--dir', hub).stderr, /a node named "pi" already exists/);

    // A node the hub has seen was in use: its files were moved off the hub, and its token must not change under it.
    const seen = await openStore(hub);
    try {
      await seen.recordObservations([{ publicKey: (await seen.node('pi'))!.publicKey, endpoint: Endpoint.parse('203.0.113.9:51820'), at: Date.now() }]);
    } finally {
      await seen.close();
    }
    assert.match(wgp2p('node', 'add', 'pi', '--agent', '--dir', hub).stderr, /a node named "pi" already exists/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
