/**
 * What can go wrong in the hub's store, whatever the engine. `code` lets callers turn a refusal
 * into their own words (the directory names the node that holds an address); the message alone
 * already says what is wrong and what to do.
 */
export type StoreErrorCode =
  /** There is no store in the directory. */
  | 'missing'
  /** A store is already there (hub init twice). */
  | 'exists'
  /** The store cannot be read as a wgp2p store. */
  | 'corrupt'
  /** A newer wgp2p wrote it: its schema is not one this version knows. */
  | 'too-new'
  /** A unique field (name, key, address) is taken. */
  | 'conflict'
  /** No free host number is left in the network. */
  | 'full'
  /** The node (or the state a change needs, such as an unused join code) is not there. */
  | 'not-found'
  /** Another process holds the write lock longer than this connection waits: try again. */
  | 'busy'
  /** The engine could not write: disk full, an I/O error, a read-only file. Nothing was changed. */
  | 'unavailable';

export class StoreError extends Error {
  override name = 'StoreError';

  constructor(
    message: string,
    readonly code: StoreErrorCode,
    /** For a conflict: the field that is taken ("name", "public key", "host number", …). */
    readonly field?: string,
  ) {
    super(message);
  }
}
