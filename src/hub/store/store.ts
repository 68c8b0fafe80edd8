import { SqliteStore } from './sqlite.js';
import type { HostRequest, HubSettings, NodeChanges, NodeDraft, NodeKind, NodeRecord, NodeUpdate, Observation } from './model.js';

export { StoreError, type StoreErrorCode } from './errors.js';

/**
 * The hub's directory store, as every caller sees it. Asynchronous throughout, so that an engine
 * that answers over a socket (PostgreSQL) fits behind it without touching callers; nothing here
 * returns every node except `listNodes` and a reset of the change feed.
 *
 * Failures are StoreErrors whose message names the problem and the fix, and whose `code` says
 * which kind it is (see errors.ts).
 */
export interface DirectoryStore {
  /** Which engine this is, for logs and status. */
  readonly engine: string;
  close(): Promise<void>;

  hub(): Promise<HubSettings>;

  /** The directory's current revision (see NodeChanges). */
  revision(): Promise<number>;
  node(name: string): Promise<NodeRecord | undefined>;
  /** The node at this host number (address), if any. */
  nodeAt(hostNumber: number): Promise<NodeRecord | undefined>;
  /** Every node, oldest first: for listings and a starting hub, not for directory operations. */
  listNodes(): Promise<NodeRecord[]>;
  /** Nodes of `kind` in any of `groups` that are not waiting to join, oldest first. */
  members(groups: readonly string[], kind: NodeKind): Promise<NodeRecord[]>;
  /** Nodes with routes behind them (a few agents, not every node). */
  routed(): Promise<NodeRecord[]>;

  /** Adds a node at the host number `host` asks for, or the lowest free one; refuses a taken name, key or address. */
  addNode(draft: NodeDraft, host: HostRequest): Promise<NodeRecord>;
  updateNode(name: string, change: NodeUpdate): Promise<NodeRecord>;
  /** False if there was no such node. */
  removeNode(name: string): Promise<boolean>;
  /**
   * A new token for an agent or relay that was given one by the hub (not one that joined with a
   * code): the old token stops working. Refused (not-found) for any other node.
   */
  replaceToken(name: string, tokenHash: string): Promise<NodeRecord>;
  /**
   * Completes a join: the device's own public key replaces the code's one-time key and the code
   * is spent, atomically (two racing enrolments cannot both win). The same device asking again
   * (its reply was lost) succeeds again with a new token; another key is refused.
   */
  completeEnrolment(name: string, publicKey: string, tokenHash: string): Promise<NodeRecord>;
  /** Takes back a completion whose device key could not be admitted: the code is usable again. */
  undoEnrolment(name: string, publicKey: string): Promise<void>;

  /** What changed after revision `since` (0: everything, as a reset). */
  changesSince(since: number): Promise<NodeChanges>;
  /**
   * Calls `listener` soon after the directory changes, in this process or another (a `node add`
   * from the CLI): within 250 ms for SQLite. Calls are hints and may be coalesced; the listener
   * asks `changesSince` for what changed. Returns the unsubscribe function.
   */
  subscribe(listener: (revision: number) => void): () => void;

  /** Where the hub saw these nodes; never a directory change. Observations of unknown keys are dropped. */
  recordObservations(batch: readonly Observation[]): Promise<void>;
  /** The last observation of each of these keys (all of them when omitted): one per address family. */
  observations(publicKeys?: readonly string[]): Promise<Map<string, Observation[]>>;
}

/**
 * Opens the store in `dir` (migrating an older one, in one transaction). One engine exists: the
 * SQLite file DIR/hub.sqlite; another would be chosen here from what the directory holds.
 */
export async function openStore(dir: string, opts: OpenOptions = {}): Promise<DirectoryStore> {
  return SqliteStore.open(dir, { lockWaitMs: opts.lockWaitMs });
}

export interface OpenOptions {
  /**
   * How long a write may wait for another process's lock before it fails with code 'busy'. An
   * engine that waits synchronously (SQLite) blocks the process meanwhile; default: 5 s, for
   * one-shot commands.
   */
  lockWaitMs?: number;
}

/** Creates a new store in `dir` holding the hub's settings; refuses if one is there. */
export async function createStore(dir: string, hub: HubSettings): Promise<DirectoryStore> {
  return SqliteStore.create(dir, hub);
}
