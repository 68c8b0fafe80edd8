import type { CommittedPath } from './path.js';

/** Before the hub decided anything (or after a hub restart, until it does). */
export function nonePath(attemptFailed: () => boolean): CommittedPath {
  return {
    via: 'none',
    seq: -1,
    endpoint: null,
    relay: null,
    relayId: null,
    kind: null,
    watched: false,
    hasEntry: true,
    reAdded: false,
    show: () => (attemptFailed() ? 'impossible' : 'unknown'),
    busy: () => false,
    tick: async () => undefined,
  };
}
