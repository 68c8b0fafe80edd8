import type { IpAddress } from '../core/net/address.js';
import { isPending, type NodeChanges, type NodeRecord } from './store/model.js';

/**
 * The running hub's copy of the directory, kept current from the store's change feed: every node
 * by name, public key, tunnel address and host number, and who is in which group. It loads the
 * whole directory once (at start, or when the feed says reset) and afterwards only what changed;
 * `apply` says what that was, so the hub touches only those nodes.
 */

export interface ChangedNode {
  before: NodeRecord;
  after: NodeRecord;
}

export interface ViewDelta {
  /** The whole directory was reloaded (added/changed/removed still say what differs). */
  reset: boolean;
  added: NodeRecord[];
  changed: ChangedNode[];
  removed: NodeRecord[];
}

export function isEmptyDelta(d: ViewDelta): boolean {
  return !d.reset && d.added.length === 0 && d.changed.length === 0 && d.removed.length === 0;
}

export class DirectoryView {
  private readonly names = new Map<string, NodeRecord>();
  private readonly keys = new Map<string, NodeRecord>();
  private readonly addresses = new Map<string, NodeRecord>();
  private readonly hosts = new Map<number, NodeRecord>();
  /** Per group, the nodes its members may see: joined, not relays. */
  private readonly visible = new Map<string, Set<NodeRecord>>();
  /** Per group, its joined agents: the pairs the hub coordinates. */
  private readonly agents = new Map<string, Set<NodeRecord>>();
  private rev = 0;

  /** The store revision this view reflects. */
  get revision(): number {
    return this.rev;
  }

  get size(): number {
    return this.names.size;
  }

  byName(name: string): NodeRecord | undefined {
    return this.names.get(name);
  }

  byKey(publicKey: string): NodeRecord | undefined {
    return this.keys.get(publicKey);
  }

  /** The node whose tunnel address this is. */
  byAddress(address: IpAddress | string): NodeRecord | undefined {
    return this.addresses.get(address.toString());
  }

  byHost(hostNumber: number): NodeRecord | undefined {
    return this.hosts.get(hostNumber);
  }

  /** Every node, oldest first. */
  all(): IterableIterator<NodeRecord> {
    return this.names.values();
  }

  /** The peers an agent is told about (peer-view.ts `canSee`), from the group index: O(its groups' members), not O(nodes). */
  visibleTo(viewer: NodeRecord): NodeRecord[] {
    const out = new Set<NodeRecord>();
    for (const g of viewer.groups) for (const n of this.visible.get(g) ?? []) if (n.publicKey !== viewer.publicKey) out.add(n);
    return [...out];
  }

  /** Whether two nodes are an agent pair the hub coordinates: both joined agents sharing a group. O(their groups). */
  pairable(x: string, y: string): boolean {
    const a = this.keys.get(x);
    const b = this.keys.get(y);
    if (!a || !b || a === b) return false;
    return a.groups.some((g) => {
      const members = this.agents.get(g);
      return members !== undefined && members.has(a) && members.has(b);
    });
  }

  /** Applies a batch of the change feed and says what it changed. */
  apply(changes: NodeChanges): ViewDelta {
    const delta: ViewDelta = { reset: changes.reset, added: [], changed: [], removed: [] };
    if (changes.reset) {
      const incoming = new Map(changes.upserted.map((n) => [n.name, n]));
      for (const n of this.names.values()) if (!incoming.has(n.name)) delta.removed.push(n);
      for (const n of changes.upserted) {
        const old = this.names.get(n.name);
        if (!old) delta.added.push(n);
        else if (old.revision !== n.revision) delta.changed.push({ before: old, after: n });
      }
      for (const m of [this.names, this.keys, this.addresses, this.hosts, this.visible, this.agents]) m.clear();
      for (const n of changes.upserted) this.index(n);
      this.rev = changes.revision;
      return delta;
    }
    for (const r of changes.removed) {
      const old = this.names.get(r.name);
      if (!old || old.revision > r.revision) continue;
      this.unindex(old);
      this.names.delete(old.name);
      delta.removed.push(old);
    }
    for (const n of changes.upserted) {
      const old = this.names.get(n.name);
      if (old && old.revision >= n.revision) continue;
      if (old) {
        this.unindex(old);
        delta.changed.push({ before: old, after: n });
      } else delta.added.push(n);
      this.index(n);
    }
    this.rev = Math.max(this.rev, changes.revision);
    return delta;
  }

  private index(n: NodeRecord): void {
    // Map.set on a name already there keeps its place: iteration stays oldest first.
    this.names.set(n.name, n);
    this.keys.set(n.publicKey, n);
    this.addresses.set(n.address.toString(), n);
    this.hosts.set(n.hostNumber, n);
    if (isPending(n) || n.kind === 'relay') return;
    for (const g of n.groups) {
      member(this.visible, g).add(n);
      if (n.kind === 'agent') member(this.agents, g).add(n);
    }
  }

  private unindex(n: NodeRecord): void {
    if (this.keys.get(n.publicKey) === n) this.keys.delete(n.publicKey);
    if (this.addresses.get(n.address.toString()) === n) this.addresses.delete(n.address.toString());
    if (this.hosts.get(n.hostNumber) === n) this.hosts.delete(n.hostNumber);
    for (const g of n.groups) {
      drop(this.visible, g, n);
      drop(this.agents, g, n);
    }
  }
}

function member(index: Map<string, Set<NodeRecord>>, group: string): Set<NodeRecord> {
  let s = index.get(group);
  if (!s) index.set(group, (s = new Set()));
  return s;
}

function drop(index: Map<string, Set<NodeRecord>>, group: string, n: NodeRecord): void {
  const s = index.get(group);
  if (!s) return;
  s.delete(n);
  if (s.size === 0) index.delete(group);
}
