import Database from 'better-sqlite3';
import { existsSync, chmodSync } from 'node:fs';
import { join } from 'node:path';

/** The hub's directory: its own identity and settings, and every node. One SQLite file, mode 0600. */

export interface HubRecord {
  privateKey: string;
  publicKey: string;
  /** What nodes put in their configs as the hub's Endpoint (host:port). */
  endpoint: string;
  /** Hub tunnel address with the P2P subnet's prefix, e.g. 10.99.0.1/24. */
  address: string;
  /** Subnet for the addresses clients use in their proxied config. */
  proxiedSubnet: string;
  listenPort: number;
  apiPort: number;
  /** Keepalive in a client's config toward the hub: bounds how fast the hub notices a roam. */
  clientHubKeepalive: number;
  /** Keepalive in a client's config toward agent nodes, and that agents set toward clients. */
  peerKeepalive: number;
  /** Keepalive in an agent's config toward the hub. */
  agentHubKeepalive: number;
  staleAfterSec: number;
}

/** Relays are nodes too: a tunnel to the hub is how they register and get allocations. */
export type NodeKind = 'agent' | 'client' | 'relay';

export interface NodeRecord {
  name: string;
  kind: NodeKind;
  address: string;
  proxiedAddress: string | null;
  publicKey: string;
  /** '' when the node made its own key (it joined with a code): the hub never sees it. */
  privateKey: string;
  tokenHash: string | null;
  fixedEndpoint: string | null;
  listenPort: number | null;
  routes: string[];
  observedEndpoint: string | null;
  createdAt: string;
  /** Join codes: the code's one-time public key, while the hub still answers for it. */
  enrolKey: string | null;
  /** When the code stops being accepted (ms since the epoch). */
  enrolExpiresAt: number | null;
  enrolUsed: boolean;
  /** Nodes see and reach each other only when they share a group. */
  groups: string[];
  /** Agents: reach every peer through the hub instead of directly (the second fallback, chosen by the user). */
  proxied: boolean;
}

export class StoreError extends Error {
  override name = 'StoreError';
}

const SCHEMA = `
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
`;

/** The schema version SCHEMA creates; older stores are migrated on open. */
const SCHEMA_VERSION = 2;

/**
 * Version 1 (the first release) allowed only agents and clients and had no proxied choice. SQLite
 * cannot change a CHECK constraint in place: the table is rebuilt, in one transaction.
 */
function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version >= SCHEMA_VERSION) return;
  const columns = (db.prepare('PRAGMA table_info(nodes)').all() as { name: string }[]).map((c) => c.name);
  db.transaction(() => {
    if (!columns.includes('proxied')) {
      const create = SCHEMA.slice(SCHEMA.indexOf('CREATE TABLE IF NOT EXISTS nodes')).replace('IF NOT EXISTS nodes', 'nodes_v2');
      db.exec(create);
      const copied = columns.join(', ');
      db.exec(`INSERT INTO nodes_v2 (${copied}) SELECT ${copied} FROM nodes; DROP TABLE nodes; ALTER TABLE nodes_v2 RENAME TO nodes;`);
    }
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

interface NodeRow {
  name: string;
  kind: NodeKind;
  address: string;
  proxied_address: string | null;
  public_key: string;
  private_key: string;
  token_hash: string | null;
  fixed_endpoint: string | null;
  listen_port: number | null;
  routes: string;
  observed_endpoint: string | null;
  created_at: string;
  enrol_key: string | null;
  enrol_expires_at: number | null;
  enrol_used: number;
  groups: string;
  proxied: number;
}

function toRecord(r: NodeRow): NodeRecord {
  return {
    name: r.name,
    kind: r.kind,
    address: r.address,
    proxiedAddress: r.proxied_address,
    publicKey: r.public_key,
    privateKey: r.private_key,
    tokenHash: r.token_hash,
    fixedEndpoint: r.fixed_endpoint,
    listenPort: r.listen_port,
    routes: JSON.parse(r.routes) as string[],
    observedEndpoint: r.observed_endpoint,
    createdAt: r.created_at,
    enrolKey: r.enrol_key,
    enrolExpiresAt: r.enrol_expires_at,
    enrolUsed: r.enrol_used === 1,
    groups: JSON.parse(r.groups) as string[],
    proxied: r.proxied === 1,
  };
}

export function storePath(dir: string): string {
  return join(dir, 'hub.sqlite');
}

export class Store {
  private constructor(private readonly db: Database.Database) {}

  static create(dir: string, hub: HubRecord): Store {
    const file = storePath(dir);
    if (existsSync(file)) throw new StoreError(`${file} already exists; this directory already holds a hub (remove it to start over)`);
    const db = new Database(file);
    chmodSync(file, 0o600);
    db.pragma('journal_mode = WAL');
    db.exec(SCHEMA);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    db.prepare('INSERT INTO hub (id, json) VALUES (1, ?)').run(JSON.stringify(hub));
    return new Store(db);
  }

  static open(dir: string): Store {
    const file = storePath(dir);
    if (!existsSync(file)) throw new StoreError(`no hub store at ${file}; create one with "wgp2p hub init --dir ${dir} …"`);
    let db: Database.Database;
    try {
      db = new Database(file, { fileMustExist: true });
      db.pragma('journal_mode = WAL');
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[];
      if (!tables.some((t) => t.name === 'hub') || !tables.some((t) => t.name === 'nodes')) throw new Error('tables are missing');
      db.prepare('SELECT json FROM hub WHERE id = 1').get();
      migrate(db);
    } catch (err) {
      throw new StoreError(`the hub store ${file} is corrupt or not a wgp2p store (${(err as Error).message}); restore it from a backup or run "wgp2p hub init" in a new directory`);
    }
    return new Store(db);
  }

  close(): void {
    this.db.close();
  }

  hub(): HubRecord {
    const row = this.db.prepare('SELECT json FROM hub WHERE id = 1').get() as { json: string } | undefined;
    if (!row) throw new StoreError('the hub store has no hub record; it is corrupt');
    return JSON.parse(row.json) as HubRecord;
  }

  /** Changes whenever another connection commits: lets a running hub notice `node add` within one poll. */
  dataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  nodes(): NodeRecord[] {
    return (this.db.prepare('SELECT * FROM nodes ORDER BY created_at, name').all() as NodeRow[]).map(toRecord);
  }

  node(name: string): NodeRecord | undefined {
    const row = this.db.prepare('SELECT * FROM nodes WHERE name = ?').get(name) as NodeRow | undefined;
    return row ? toRecord(row) : undefined;
  }

  addNode(n: NodeRecord): void {
    try {
      this.db
        .prepare(
          `INSERT INTO nodes (name, kind, address, proxied_address, public_key, private_key, token_hash, fixed_endpoint, listen_port, routes, observed_endpoint, created_at, enrol_key, enrol_expires_at, enrol_used, groups, proxied)
           VALUES (@name, @kind, @address, @proxiedAddress, @publicKey, @privateKey, @tokenHash, @fixedEndpoint, @listenPort, @routes, @observedEndpoint, @createdAt, @enrolKey, @enrolExpiresAt, @enrolUsed, @groups, @proxied)`,
        )
        .run({ ...n, routes: JSON.stringify(n.routes), enrolUsed: n.enrolUsed ? 1 : 0, groups: JSON.stringify(n.groups), proxied: n.proxied ? 1 : 0 });
    } catch (err) {
      const msg = (err as Error).message;
      const column = /UNIQUE constraint failed: nodes\.(\w+)/.exec(msg)?.[1];
      if (column) throw new StoreError(`a node with this ${column.replace('_', ' ')} already exists`);
      throw err;
    }
  }

  /**
   * Completes a join: the device's own public key replaces the code's one-time key and the code is
   * spent. One conditional UPDATE, so two racing enrolments cannot both win.
   */
  completeEnrolment(name: string, publicKey: string, tokenHash: string): void {
    try {
      const r = this.db
        .prepare("UPDATE nodes SET public_key = ?, private_key = '', token_hash = ?, enrol_used = 1 WHERE name = ? AND enrol_key IS NOT NULL AND enrol_used = 0")
        .run(publicKey, tokenHash, name);
      if (r.changes !== 1) throw new StoreError(`node "${name}" has no unused join code`);
    } catch (err) {
      if (/UNIQUE constraint failed: nodes\.public_key/.test((err as Error).message)) throw new StoreError('that public key already belongs to another node');
      throw err;
    }
  }

  removeNode(name: string): boolean {
    return this.db.prepare('DELETE FROM nodes WHERE name = ?').run(name).changes > 0;
  }

  /** Changes what a node may see and how it is reached; the running hub applies it within 250 ms. */
  updateNode(name: string, change: { groups?: string[]; routes?: string[]; proxied?: boolean }): void {
    const n = this.node(name);
    if (!n) throw new StoreError(`no node named "${name}"`);
    this.db
      .prepare('UPDATE nodes SET groups = ?, routes = ?, proxied = ? WHERE name = ?')
      .run(JSON.stringify(change.groups ?? n.groups), JSON.stringify(change.routes ?? n.routes), (change.proxied ?? n.proxied) ? 1 : 0, name);
  }

  setObservedEndpoint(publicKey: string, endpoint: string): void {
    this.db.prepare('UPDATE nodes SET observed_endpoint = ? WHERE public_key = ? AND (observed_endpoint IS NOT ? )').run(endpoint, publicKey, endpoint);
  }
}
