import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { Store } from '../../../src/core/store.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { addNode } from '../../../src/hub/directory.js';

/** The first release's schema, as a store created by it looks on disk. */
const V1 = `
CREATE TABLE hub (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL);
CREATE TABLE nodes (
  name TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('agent', 'client')), address TEXT NOT NULL UNIQUE,
  proxied_address TEXT UNIQUE, public_key TEXT NOT NULL UNIQUE, private_key TEXT NOT NULL, token_hash TEXT,
  fixed_endpoint TEXT, listen_port INTEGER, routes TEXT NOT NULL DEFAULT '[]', observed_endpoint TEXT,
  created_at TEXT NOT NULL, enrol_key TEXT UNIQUE, enrol_expires_at INTEGER, enrol_used INTEGER NOT NULL DEFAULT 0,
  groups TEXT NOT NULL DEFAULT '["default"]'
);`;

test('a store made by the first release is migrated on open: nodes kept, relays and proxied agents allowed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-store-'));
  try {
    const k = generateKeyPair();
    const db = new Database(join(dir, 'hub.sqlite'));
    db.exec(V1);
    db.prepare('INSERT INTO hub (id, json) VALUES (1, ?)').run(
      JSON.stringify({ ...k, endpoint: '203.0.113.2:51820', address: '10.99.0.1/24', proxiedSubnet: '10.99.1.0/24', listenPort: 51820, apiPort: 51821, clientHubKeepalive: 1, peerKeepalive: 25, agentHubKeepalive: 25, staleAfterSec: 120 }),
    );
    const old = generateKeyPair();
    db.prepare("INSERT INTO nodes (name, kind, address, public_key, private_key, listen_port, created_at, groups) VALUES ('dev', 'agent', '10.99.0.2', ?, ?, 51820, '2026-01-01', '[\"home\"]')").run(old.publicKey, old.privateKey);
    db.close();

    const store = Store.open(dir);
    try {
      const dev = store.node('dev')!;
      assert.equal(dev.publicKey, old.publicKey);
      assert.deepEqual(dev.groups, ['home']);
      assert.equal(dev.proxied, false);
      addNode(store, { name: 'relay1', kind: 'relay' });
      addNode(store, { name: 'pc', kind: 'agent', proxied: true });
      assert.equal(store.node('relay1')!.kind, 'relay');
      assert.equal(store.node('pc')!.proxied, true);
      store.updateNode('dev', { proxied: true, groups: ['home', 'work'] });
      assert.deepEqual([store.node('dev')!.proxied, store.node('dev')!.groups], [true, ['home', 'work']]);
    } finally {
      store.close();
    }
    // Opening again does not migrate twice.
    Store.open(dir).close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
