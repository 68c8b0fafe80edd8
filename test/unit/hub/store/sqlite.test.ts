import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import Database from 'better-sqlite3';
import { Cidr } from '../../../../src/core/net/cidr.js';
import { Endpoint } from '../../../../src/core/net/endpoint.js';
import { nodeAddress6 } from '../../../../src/hub/address-plan.js';
import { addNode } from '../../../../src/hub/directory.js';
import { generateKeyPair } from '../../../../src/core/wireguard/keys.js';
import type { HubSettings } from '../../../../src/hub/store/model.js';
import { SqliteStore } from '../../../../src/hub/store/sqlite.js';
import { createStore, openStore, StoreError, type DirectoryStore } from '../../../../src/hub/store/store.js';
import { testHub } from '../fixtures.js';

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

/** The current release's schema (user_version 2), exactly as its Store.create wrote it. */
const V2 = `
CREATE TABLE IF NOT EXISTS hub (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
  name TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('agent', 'client', 'relay')),
  address TEXT NOT NULL UNIQUE,
  proxied_address TEXT UNIQUE,
  public_key TEXT NOT NULL UNIQUE,
  private_key TEXT NOT NULL,
  token_hash TEXT,
  fixed_endpoint TEXT,
  listen_port INTEGER,
  routes TEXT NOT NULL DEFAULT '[]',
  observed_endpoint TEXT,
  created_at TEXT NOT NULL,
  enrol_key TEXT UNIQUE,
  enrol_expires_at INTEGER,
  enrol_used INTEGER NOT NULL DEFAULT 0,
  groups TEXT NOT NULL DEFAULT '["default"]',
  proxied INTEGER NOT NULL DEFAULT 0
);
PRAGMA user_version = 2;`;

const hubJson = () => {
  const k = generateKeyPair();
  return JSON.stringify({ ...k, endpoint: '203.0.113.2:51820', address: '10.99.0.1/24', proxiedSubnet: '10.99.1.0/24', listenPort: 51820, apiPort: 51821, clientHubKeepalive: 1, peerKeepalive: 25, agentHubKeepalive: 25, staleAfterSec: 120 });
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgp2p-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function withStore<T>(fn: (s: DirectoryStore) => Promise<T>): Promise<T> {
  const s = await openStore(dir);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

test('a store made by the first release is migrated on open: nodes kept, relays and proxied agents allowed', async () => {
  const db = new Database(join(dir, 'hub.sqlite'));
  db.exec(V1);
  db.prepare('INSERT INTO hub (id, json) VALUES (1, ?)').run(hubJson());
  const old = generateKeyPair();
  db.prepare("INSERT INTO nodes (name, kind, address, public_key, private_key, listen_port, created_at, groups) VALUES ('dev', 'agent', '10.99.0.2', ?, ?, 51820, '2026-01-01', '[\"home\"]')").run(old.publicKey, old.privateKey);
  db.close();

  await withStore(async (store) => {
    const dev = (await store.node('dev'))!;
    assert.equal(dev.publicKey, old.publicKey);
    assert.deepEqual(dev.groups, ['home']);
    assert.equal(dev.proxied, false);
    await addNode(store, { name: 'relay1', kind: 'relay' });
    await addNode(store, { name: 'pc', kind: 'agent', proxied: true });
    assert.equal((await store.node('relay1'))!.kind, 'relay');
    assert.equal((await store.node('pc'))!.proxied, true);
    await store.updateNode('dev', { proxied: true, groups: ['home', 'work'] });
    const after = (await store.node('dev'))!;
    assert.deepEqual([after.proxied, after.groups], [true, ['home', 'work']]);
  });
  // Opening again does not migrate twice.
  await (await openStore(dir)).close();
});

/** A v2 store as the current release leaves it: an agent the hub has seen, a client, a pending join, a relay. */
function writeV2(extra: (db: Database.Database) => void = () => undefined): { dev: string; phone: string } {
  const db = new Database(join(dir, 'hub.sqlite'));
  db.exec(V2);
  db.prepare('INSERT INTO hub (id, json) VALUES (1, ?)').run(hubJson());
  const dev = generateKeyPair();
  const phone = generateKeyPair();
  const joining = generateKeyPair();
  const relay = generateKeyPair();
  const ins = db.prepare(`INSERT INTO nodes (name, kind, address, proxied_address, public_key, private_key, token_hash, fixed_endpoint, listen_port, routes, observed_endpoint, created_at, enrol_key, enrol_expires_at, enrol_used, groups, proxied)
    VALUES (@name, @kind, @address, @proxied_address, @public_key, @private_key, @token_hash, @fixed_endpoint, @listen_port, @routes, @observed_endpoint, @created_at, @enrol_key, @enrol_expires_at, @enrol_used, @groups, @proxied)`);
  const base = { proxied_address: null, token_hash: null, fixed_endpoint: null, listen_port: null, routes: '[]', observed_endpoint: null, enrol_key: null, enrol_expires_at: null, enrol_used: 0, groups: '["default"]', proxied: 0 };
  ins.run({ ...base, name: 'dev', kind: 'agent', address: '10.99.0.2', public_key: dev.publicKey, private_key: dev.privateKey, token_hash: 'ab'.repeat(32), listen_port: 51820, routes: '["192.168.10.0/24"]', observed_endpoint: '203.0.113.10:51820', created_at: '2026-01-01T00:00:00.000Z', groups: '["home","default"]' });
  ins.run({ ...base, name: 'phone', kind: 'client', address: '10.99.0.3', proxied_address: '10.99.1.3', public_key: phone.publicKey, private_key: phone.privateKey, listen_port: 41003, observed_endpoint: '203.0.113.20:41003', created_at: '2026-01-02T00:00:00.000Z', groups: '["home"]' });
  ins.run({ ...base, name: 'late', kind: 'agent', address: '10.99.0.7', public_key: joining.publicKey, private_key: '', listen_port: 51820, created_at: '2026-01-03T00:00:00.000Z', enrol_key: joining.publicKey, enrol_expires_at: 1_900_000_000_000 });
  ins.run({ ...base, name: 'relay1', kind: 'relay', address: '10.99.0.4', public_key: relay.publicKey, private_key: relay.privateKey, token_hash: 'cd'.repeat(32), fixed_endpoint: 'relay.example.org:51820', created_at: '2026-01-04T00:00:00.000Z', proxied: 0 });
  extra(db);
  db.close();
  return { dev: dev.publicKey, phone: phone.publicKey };
}

test('a store of the current release (schema 2) is migrated in one transaction: host numbers, observations apart, groups indexed', async () => {
  const keys = writeV2();
  await withStore(async (store) => {
    const nodes = await store.listNodes();
    assert.deepEqual(
      nodes.map((n) => [n.name, n.hostNumber, n.address.toString(), n.proxiedAddress?.toString() ?? null, n.listenPort]),
      [
        ['dev', 2, '10.99.0.2', null, 51820],
        ['phone', 3, '10.99.0.3', '10.99.1.3', 41003],
        ['late', 7, '10.99.0.7', null, 51820],
        ['relay1', 4, '10.99.0.4', null, null],
      ],
    );
    const dev = nodes[0];
    assert.deepEqual(dev.routes.map(String), ['192.168.10.0/24']);
    assert.deepEqual(dev.groups, ['home', 'default']);
    assert.equal(dev.tokenHash, 'ab'.repeat(32));
    assert.equal(nodes[3].fixedEndpoint?.toString(), 'relay.example.org:51820');
    assert.equal(nodes[2].enrolKey, nodes[2].publicKey);
    // The observed endpoints moved to their own table, keyed by public key.
    const seen = await store.observations();
    assert.deepEqual([...seen.values()].flat().map((o) => [o.publicKey, o.endpoint.toString()]).sort(), [[keys.dev, '203.0.113.10:51820'], [keys.phone, '203.0.113.20:41003']].sort());
    // Groups are queryable: agents of "home" that have joined (not the pending "late").
    assert.deepEqual((await store.members(['home'], 'agent')).map((n) => n.name), ['dev']);
    assert.deepEqual((await store.members(['default'], 'agent')).map((n) => n.name), ['dev']);
    // The feed starts with everything as a reset.
    const all = await store.changesSince(0);
    assert.equal(all.reset, true);
    assert.equal(all.upserted.length, 4);
    // Allocation continues at the lowest free host number.
    assert.equal((await addNode(store, { name: 'pc', kind: 'agent' })).node.address.toString(), '10.99.0.5');
    // IPv6 arrived with schema 4: the hub has a ULA /64 of its own, and every node its address in it.
    const hub = await store.hub();
    assert.deepEqual(hub.endpoints.map(String), ['203.0.113.2:51820']);
    assert.equal(hub.address6.prefix, 64);
    assert.ok(Cidr.parse('fd00::/8').covers(hub.address6.subnet), `a unique-local prefix: ${hub.address6}`);
    assert.equal(hub.address6.address.toString(), hub.address6.subnet.nth(1).toString(), 'the hub keeps its host number (.1) in IPv6');
    assert.equal(hub.proxiedSubnet6.toString(), hub.address6.subnet.next().toString());
    assert.equal(nodeAddress6(hub, dev.hostNumber).toString(), hub.address6.subnet.nth(2).toString());
  });
  const db = new Database(join(dir, 'hub.sqlite'), { readonly: true });
  assert.equal(db.pragma('user_version', { simple: true }), 4);
  assert.ok(!(db.prepare('PRAGMA table_info(nodes)').all() as { name: string }[]).some((c) => c.name === 'observed_endpoint'));
  db.close();
  await (await openStore(dir)).close();
});

test('a store of the release before IPv6 (schema 3) gains its IPv6 prefix, per-family observations and per-node hub endpoints', async () => {
  await (await createStore(dir, testHub())).close();
  const k = generateKeyPair();
  // Rewrite the new store into the shape schema 3 had.
  const db = new Database(join(dir, 'hub.sqlite'));
  const json = JSON.parse((db.prepare('SELECT json FROM hub').get() as { json: string }).json) as Record<string, unknown>;
  const { endpoints, address6, proxiedSubnet6, ...rest } = json;
  void address6;
  void proxiedSubnet6;
  db.prepare('UPDATE hub SET json = ?').run(JSON.stringify({ ...rest, endpoint: (endpoints as string[])[0] }));
  db.exec('ALTER TABLE nodes DROP COLUMN hub_endpoint; DROP TABLE observed_endpoints; CREATE TABLE observed_endpoints (public_key TEXT PRIMARY KEY, endpoint TEXT NOT NULL, observed_at INTEGER NOT NULL) WITHOUT ROWID;');
  db.prepare("INSERT INTO nodes (name, kind, host_number, address, public_key, private_key, created_at, revision) VALUES ('dev', 'agent', 2, '10.99.0.2', ?, ?, '2026-11-01', 2)").run(k.publicKey, k.privateKey);
  db.prepare('INSERT INTO observed_endpoints VALUES (?, ?, 5)').run(k.publicKey, '203.0.113.10:51820');
  db.pragma('user_version = 3');
  db.close();
  await withStore(async (store) => {
    const hub = await store.hub();
    assert.deepEqual(hub.endpoints.map(String), ['203.0.113.2:51820']);
    assert.ok(Cidr.parse('fd00::/8').covers(hub.address6.subnet));
    const dev = (await store.node('dev'))!;
    assert.equal(dev.hubEndpoint, null);
    assert.deepEqual([...(await store.observations()).values()].flat().map((o) => o.endpoint.toString()), ['203.0.113.10:51820']);
    await store.recordObservations([{ publicKey: k.publicKey, endpoint: Endpoint.parse('[2001:db8::10]:51820'), at: 6 }]);
    assert.deepEqual((await store.observations()).get(k.publicKey)?.map((o) => o.endpoint.toString()).sort(), ['203.0.113.10:51820', '[2001:db8::10]:51820'], 'one per family');
  });
  const after = new Database(join(dir, 'hub.sqlite'), { readonly: true });
  assert.equal(after.pragma('user_version', { simple: true }), 4);
  after.close();
});

test('a migration that fails leaves the store as it was', async () => {
  writeV2((db) => {
    const k = generateKeyPair();
    db.prepare("INSERT INTO nodes (name, kind, address, public_key, private_key, created_at) VALUES ('stray', 'client', '10.50.0.9', ?, ?, '2026-02-01')").run(k.publicKey, k.privateKey);
  });
  await assert.rejects(openStore(dir), (err: Error) => err instanceof StoreError && /node "stray" has the address 10\.50\.0\.9, which is not a host of the tunnel network 10\.99\.0\.0\/24/.test(err.message));
  const db = new Database(join(dir, 'hub.sqlite'), { readonly: true });
  assert.equal(db.pragma('user_version', { simple: true }), 2);
  assert.ok((db.prepare('PRAGMA table_info(nodes)').all() as { name: string }[]).some((c) => c.name === 'observed_endpoint'), 'the old table is untouched');
  assert.equal((db.prepare('SELECT COUNT(*) AS n FROM nodes').get() as { n: number }).n, 5);
  assert.deepEqual(
    (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name),
    ['hub', 'nodes'],
  );
  db.close();
});

test('a store from a newer wgp2p is refused with the reason', async () => {
  await (await createStore(dir, testHub())).close();
  const db = new Database(join(dir, 'hub.sqlite'));
  db.pragma('user_version = 9');
  db.close();
  await assert.rejects(openStore(dir), /written by a newer wgp2p \(store schema 9, this one knows 4\); upgrade wgp2p/);
});

test('a new store is mode 0600 and refuses to be created twice; a missing or corrupt one is reported, not created', async () => {
  const created = await createStore(dir, testHub());
  await addNode(created, { name: 'a', kind: 'client' });
  for (const f of ['hub.sqlite', 'hub.sqlite-wal', 'hub.sqlite-shm']) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
  await created.close();
  await assert.rejects(createStore(dir, testHub()), /already exists; this directory already holds a hub/);
  const empty = mkdtempSync(join(tmpdir(), 'wgp2p-empty-'));
  try {
    await assert.rejects(openStore(empty), /no hub store at .*hub init/);
    writeFileSync(join(empty, 'hub.sqlite'), 'this is not sqlite');
    await assert.rejects(openStore(empty), /corrupt or not a wgp2p store/);
  } finally {
    rmSync(empty, { recursive: true });
  }
});

test('the hub settings round-trip as values', async () => {
  const hub: HubSettings = testHub();
  await (await createStore(dir, hub)).close();
  await withStore(async (store) => {
    const h = await store.hub();
    assert.deepEqual(h.endpoints.map(String), ['203.0.113.2:51820']);
    assert.equal(h.address6.toString(), 'fd3c:1a2b:3c4d::1/64');
    assert.equal(h.address.toString(), '10.99.0.1/24');
    assert.equal(h.address.subnet.toString(), '10.99.0.0/24');
    assert.equal(h.proxiedSubnet.toString(), '10.99.1.0/24');
    assert.equal(h.privateKey, hub.privateKey);
  });
});

test('the change feed: upserts and removals after a revision, a re-added name, observations never count', async () => {
  await (await createStore(dir, testHub())).close();
  await withStore(async (store) => {
    const r0 = await store.revision();
    assert.deepEqual(await store.changesSince(r0), { revision: r0, reset: false, upserted: [], removed: [] });
    const a = (await addNode(store, { name: 'a', kind: 'agent' })).node;
    await addNode(store, { name: 'b', kind: 'client' });
    const r1 = await store.revision();
    assert.equal(r1, r0 + 2);
    const c1 = await store.changesSince(r0);
    assert.deepEqual([c1.reset, c1.upserted.map((n) => n.name), c1.removed, c1.revision], [false, ['a', 'b'], [], r1]);

    await store.updateNode('a', { groups: ['x'] });
    await store.updateNode('a', { groups: ['x'] });
    const c2 = await store.changesSince(r1);
    assert.deepEqual(c2.upserted.map((n) => [n.name, n.groups]), [['a', ['x']]]);
    assert.equal(c2.revision, r1 + 1, 'a change to the same values is not a change');

    await store.recordObservations([{ publicKey: a.publicKey, endpoint: Endpoint.parse('203.0.113.9:51820'), at: 1 }]);
    assert.equal(await store.revision(), c2.revision, 'an observation is not a directory change');

    assert.equal(await store.removeNode('b'), true);
    assert.equal(await store.removeNode('b'), false);
    const c3 = await store.changesSince(c2.revision);
    assert.deepEqual([c3.upserted, c3.removed.map((r) => r.name)], [[], ['b']]);

    // Removed, then added again: a reader from before sees both, and applies the removal first.
    const b2 = (await addNode(store, { name: 'b', kind: 'agent' })).node;
    const c4 = await store.changesSince(r1);
    assert.deepEqual(c4.removed.map((r) => r.name), ['b']);
    assert.deepEqual(c4.upserted.map((n) => [n.name, n.kind]), [['a', 'agent'], ['b', 'agent']]);
    assert.equal(c4.upserted[1].publicKey, b2.publicKey);

    const all = await store.changesSince(0);
    assert.deepEqual([all.reset, all.upserted.map((n) => n.name).sort()], [true, ['a', 'b']]);
    assert.equal((await store.changesSince(all.revision + 5)).reset, true, 'a reader ahead of the store (restored from a backup) starts over');
    // The observation of a removed node went with it.
    assert.equal((await store.observations()).size, 1);
  });
});

test('a reader further behind than the kept removals gets a reset', async () => {
  const s = SqliteStore.create(dir, testHub(), { tombstonesKept: 2 });
  try {
    const r0 = await s.revision();
    for (const name of ['a', 'b', 'c', 'd']) await addNode(s, { name, kind: 'client' });
    const r1 = await s.revision();
    for (const name of ['a', 'b', 'c']) await s.removeNode(name);
    assert.equal((await s.changesSince(r0)).reset, true);
    const recent = await s.changesSince(r1 + 1);
    assert.deepEqual([recent.reset, recent.removed.map((r) => r.name)], [false, ['b', 'c']]);
  } finally {
    await s.close();
  }
});

test('subscribers hear of this process\'s writes at once and of another process\'s commits within 250 ms, not of observations', async () => {
  await (await createStore(dir, testHub())).close();
  const hub = await openStore(dir);
  const cli = await openStore(dir);
  try {
    const heard: number[] = [];
    const stop = hub.subscribe((r) => heard.push(r));
    const own = (await addNode(hub, { name: 'own', kind: 'agent' })).node;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(heard, [own.revision]);
    const other = (await addNode(cli, { name: 'other', kind: 'client' })).node;
    const t0 = Date.now();
    while (heard.length < 2 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(heard, [own.revision, other.revision]);
    assert.ok(Date.now() - t0 < 600, `heard after ${Date.now() - t0} ms`);
    await cli.recordObservations([{ publicKey: own.publicKey, endpoint: Endpoint.parse('203.0.113.9:51820'), at: 1 }]);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(heard.length, 2, 'an observation written elsewhere is no directory change');
    stop();
  } finally {
    await cli.close();
    await hub.close();
  }
});

test('enrolment completes once: a second attempt and a taken key are refused', async () => {
  await (await createStore(dir, testHub())).close();
  await withStore(async (store) => {
    const added = await addNode(store, { name: 'laptop', kind: 'agent', joinValidMs: 60_000 });
    const other = (await addNode(store, { name: 'other', kind: 'agent' })).node;
    const device = generateKeyPair().publicKey;
    await assert.rejects(store.completeEnrolment('laptop', other.publicKey, 'h'), /already belongs to another node/);
    await store.recordObservations([{ publicKey: added.node.publicKey, endpoint: Endpoint.parse('203.0.113.30:40000'), at: 1 }]);
    assert.equal((await store.observations([added.node.publicKey])).size, 1, 'the join tunnel was seen');
    const done = await store.completeEnrolment('laptop', device, 'hash');
    assert.equal((await store.observations()).size, 0, 'what was seen of the one-time key goes with it');
    assert.deepEqual([done.publicKey, done.privateKey, done.enrolUsed, done.enrolKey], [device, '', true, added.node.enrolKey]);
    assert.ok(done.revision > added.node.revision);
    await assert.rejects(store.completeEnrolment('laptop', generateKeyPair().publicKey, 'h'), (err: Error) => err instanceof StoreError && err.code === 'not-found');
  });
});

test('a damaged row is named with its node, its field and the fix, never a raw SyntaxError; the fix works (issue 10, Low)', async () => {
  const created = await createStore(dir, testHub());
  await addNode(created, { name: 'laptop', kind: 'agent' });
  await addNode(created, { name: 'phone', kind: 'client' });
  await created.close();
  const db = new Database(join(dir, 'hub.sqlite'));
  db.prepare("UPDATE nodes SET groups = '[\"home\"' WHERE name = 'laptop'").run();
  db.close();
  await withStore(async (store) => {
    const named = (err: unknown) => err instanceof StoreError && err.code === 'corrupt' && /node "laptop" has a bad groups \(.*\); remove it with "wgp2p node remove laptop" and add it again, or restore the store from a backup/.test(err.message);
    await assert.rejects(store.node('laptop'), named);
    await assert.rejects(store.listNodes(), named);
    await assert.rejects(store.changesSince(0), named);
    assert.equal((await store.node('phone'))?.name, 'phone', 'the other rows still read');
    assert.equal(await store.removeNode('laptop'), true, 'the fix the message gives works on the damaged row');
    assert.deepEqual((await store.listNodes()).map((n) => n.name), ['phone']);
  });
});

test('a migration that meets a damaged row names the node and the field, and changes nothing', async () => {
  writeV2((db) => db.prepare("UPDATE nodes SET groups = 'home' WHERE name = 'phone'").run());
  await assert.rejects(openStore(dir), (err: Error) => err instanceof StoreError && /node "phone" has a bad groups column \("home", not a JSON list of names\); set it to '\["default"\]'/.test(err.message));
  const db = new Database(join(dir, 'hub.sqlite'), { readonly: true });
  assert.equal(db.pragma('user_version', { simple: true }), 2);
  db.close();
});
