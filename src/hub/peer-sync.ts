import type { Logger } from '../core/log.js';
import type { WireGuardDevice } from '../core/wireguard/device.js';
import type { PeerUpdate } from '../core/wireguard/uapi.js';
import { desiredHubPeers, desiredPeersOf, type HubPeer } from './device-peers.js';
import type { ViewDelta } from './directory-view.js';
import { isPending, type HubSettings, type NodeRecord } from './store/model.js';

/**
 * Keeps the hub's WireGuard peers equal to the directory. A change touches only the peers of the
 * nodes that changed (no device read); the full diff (read the device, compare every peer) runs
 * when the hub starts and as a periodic safety net, which also retires join keys whose grace
 * ran out and undoes anything done to the interface by hand.
 */

/** Peers per device request: a 10,000-peer set is ~2 MB of UAPI text, more than one request should carry within its 2 s timeout. */
const PEERS_PER_REQUEST = 1000;

export interface SyncCounts {
  set: number;
  removed: number;
}

const sameIps = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();

/**
 * A node that just joined: its code's one-time key goes this long after the change, not at once.
 * The enrolment's reply (the device's token) goes out through that key's tunnel after the store
 * changed; 5 s covers it and its TCP retransmits.
 */
export const ENROL_RETIRE_MS = 5000;

export class PeerSync {
  private retiring = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly device: WireGuardDevice,
    private readonly hub: HubSettings,
    private readonly log: Logger,
    private readonly retireMs = ENROL_RETIRE_MS,
  ) {}

  close(): void {
    for (const t of this.retiring.values()) clearTimeout(t);
    this.retiring.clear();
  }

  /** Reads the device and makes it hold exactly the directory's peers. */
  async full(nodes: Iterable<NodeRecord>, now = Date.now()): Promise<SyncCounts> {
    const dev = await this.device.get();
    const onDevice = new Map(dev.peers.map((p) => [p.publicKey, p]));
    const desired = desiredHubPeers(nodes, this.hub, now);
    const wanted = new Set(desired.map((p) => p.publicKey));
    const set = desired.filter((d) => !onDevice.has(d.publicKey) || !sameIps(onDevice.get(d.publicKey)!.allowedIps, d.allowedIps));
    const remove = dev.peers.filter((p) => !wanted.has(p.publicKey)).map((p) => p.publicKey);
    await this.write(remove, set);
    if (set.length || remove.length) this.log.info({ set: set.length, removed: remove.length }, 'device peers resynced with the directory');
    return { set: set.length, removed: remove.length };
  }

  /** Applies one batch of directory changes to the device: only the peers of those nodes. */
  async apply(delta: ViewDelta, now = Date.now()): Promise<SyncCounts> {
    const remove = new Set<string>();
    const set = new Map<string, HubPeer>();
    for (const n of delta.removed) {
      remove.add(n.publicKey);
      if (n.enrolKey) remove.add(n.enrolKey);
    }
    const later: string[] = [];
    for (const { before, after } of delta.changed) {
      const old = new Map(desiredPeersOf(before, this.hub, now).map((p) => [p.publicKey, p]));
      const next = desiredPeersOf(after, this.hub, now);
      const joinedNow = isPending(before) && !isPending(after);
      for (const k of old.keys()) {
        if (next.some((p) => p.publicKey === k)) continue;
        if (joinedNow && k === before.enrolKey) later.push(k);
        else remove.add(k);
      }
      for (const p of next) if (!old.has(p.publicKey) || !sameIps(old.get(p.publicKey)!.allowedIps, p.allowedIps)) set.set(p.publicKey, p);
    }
    for (const n of delta.added) for (const p of desiredPeersOf(n, this.hub, now)) set.set(p.publicKey, p);
    // A key removed with one node and added with another (remove, then add again under a new name) stays.
    for (const k of set.keys()) remove.delete(k);
    await this.write([...remove], [...set.values()]);
    for (const k of later) this.retireLater(k);
    return { set: set.size, removed: remove.size };
  }

  private retireLater(key: string): void {
    clearTimeout(this.retiring.get(key));
    const t = setTimeout(() => {
      this.retiring.delete(key);
      this.write([key], []).catch((err: unknown) => this.log.warn({ err }, 'could not remove a used join key; the periodic resync will'));
    }, this.retireMs);
    t.unref();
    this.retiring.set(key, t);
  }

  /** Removals first: an address freed by one node and taken by another moves to the new peer, never back. */
  private async write(remove: string[], set: HubPeer[]): Promise<void> {
    const updates: PeerUpdate[] = [...remove.map((publicKey) => ({ publicKey, remove: true })), ...set.map((p) => ({ publicKey: p.publicKey, allowedIps: p.allowedIps }))];
    for (let i = 0; i < updates.length; i += PEERS_PER_REQUEST) await this.device.set({ peers: updates.slice(i, i + PEERS_PER_REQUEST) });
  }
}
