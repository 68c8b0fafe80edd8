import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cidr } from '../../../src/core/net/cidr.js';
import type { DeviceState, DeviceUpdate } from '../../../src/core/wireguard/uapi.js';
import type { WireGuardDevice } from '../../../src/core/wireguard/device.js';
import { createLogger } from '../../../src/core/log.js';
import { DirectoryView } from '../../../src/hub/directory-view.js';
import { PeerSync } from '../../../src/hub/peer-sync.js';
import type { NodeRecord } from '../../../src/hub/store/model.js';
import { keyOf, testHub, testNode } from './fixtures.js';

const feed = (revision: number, upserted: NodeRecord[], removed: NodeRecord[] = [], reset = false) => ({
  revision,
  reset,
  upserted,
  removed: removed.map((n) => ({ name: n.name, publicKey: n.publicKey, revision })),
});
const names = (ns: Iterable<NodeRecord>) => [...ns].map((n) => n.name).sort();

test('the view applies the change feed and says what changed; lookups by name, key, address and host number follow', () => {
  const v = new DirectoryView();
  const a = testNode('a', 2, ['home']);
  const b = testNode('b', 3, ['home'], { kind: 'client' });
  const c = testNode('c', 4, ['work']);
  const first = v.apply(feed(3, [a, b, c], [], true));
  assert.deepEqual([first.reset, names(first.added)], [true, ['a', 'b', 'c']]);
  assert.equal(v.revision, 3);
  assert.equal(v.byAddress('10.99.0.3'), b);
  assert.equal(v.byHost(4), c);
  assert.equal(v.byKey(keyOf('a')), a);

  // c moves to "home", b goes, d comes (at b's old address).
  const c2 = { ...c, groups: ['home'], revision: 4 };
  const d = testNode('d', 3, ['home'], { kind: 'client', revision: 5 });
  const delta = v.apply(feed(6, [c2, d], [b]));
  assert.deepEqual([delta.reset, names(delta.added), names(delta.removed), delta.changed.map((x) => [x.before.groups, x.after.groups])], [false, ['d'], ['b'], [[['work'], ['home']]]]);
  assert.equal(v.byAddress('10.99.0.3'), d, 'the freed address belongs to the new node');
  assert.equal(v.byKey(keyOf('b')), undefined);
  assert.deepEqual(names(v.visibleTo(a)), ['c', 'd']);
  assert.deepEqual(names(v.all()), ['a', 'c', 'd']);

  // A stale record (an older revision) changes nothing.
  assert.deepEqual(v.apply(feed(6, [c])).changed, []);
  // A reset that lacks a node removes it.
  const reset = v.apply(feed(7, [a, c2], [], true));
  assert.deepEqual([names(reset.removed), reset.added, reset.changed], [['d'], [], []]);
});

test('visibility and pairs come from the group index: joined nodes only, no relays, no self; a pair per two agents sharing a group', () => {
  const v = new DirectoryView();
  const a = testNode('a', 2, ['x']);
  const b = testNode('b', 3, ['x', 'y']);
  const c = testNode('c', 4, ['y']);
  const phone = testNode('phone', 5, ['x'], { kind: 'client' });
  const relay = testNode('relay', 6, ['x'], { kind: 'relay' });
  const late = testNode('late', 7, ['x'], { enrolKey: keyOf('late'), enrolUsed: false });
  v.apply(feed(1, [a, b, c, phone, relay, late], [], true));
  assert.deepEqual(names(v.visibleTo(a)), ['b', 'phone']);
  assert.deepEqual(names(v.visibleTo(b)), ['a', 'c', 'phone'], 'two groups, each peer once');
  const all = [a, b, c, phone, relay, late];
  const pairs = all.flatMap((x) => all.filter((y) => x.name < y.name && v.pairable(x.publicKey, y.publicKey)).map((y) => `${x.name}-${y.name}`));
  assert.deepEqual(pairs, ['a-b', 'b-c'], 'agents only, joined only, sharing a group');
  // Enrolment completes: the node gets its own key and becomes visible.
  const joined = { ...late, publicKey: keyOf('late-device'), enrolUsed: true, revision: 2 };
  const d = v.apply(feed(2, [joined]));
  assert.equal(d.changed.length, 1);
  assert.equal(v.byKey(keyOf('late')), undefined, 'the one-time key is no longer a node');
  assert.deepEqual(names(v.visibleTo(a)), ['b', 'late', 'phone']);
});

/** Records what the hub would do to its interface. */
class FakeDevice implements WireGuardDevice {
  readonly ifname = 'hub';
  readonly kind = 'uapi';
  peers = new Map<string, string[]>();
  sets: DeviceUpdate[] = [];
  reads = 0;
  async get(): Promise<DeviceState> {
    this.reads++;
    return { listenPort: 51820, fwmark: 0, peers: [...this.peers].map(([publicKey, allowedIps]) => ({ publicKey, allowedIps, persistentKeepalive: 0, lastHandshakeMs: 0, rxBytes: 0, txBytes: 0 })) };
  }
  async set(update: DeviceUpdate): Promise<void> {
    this.sets.push(update);
    for (const p of update.peers ?? []) {
      if (p.remove) this.peers.delete(p.publicKey);
      else this.peers.set(p.publicKey, p.allowedIps ?? this.peers.get(p.publicKey) ?? []);
    }
  }
}

test('peer sync: a change touches only the changed nodes\' peers and never reads the device; the full diff fixes drift', async () => {
  const hub = testHub();
  const dev = new FakeDevice();
  dev.peers.set(keyOf('stranger'), ['10.99.0.200/32']);
  const sync = new PeerSync(dev, hub, createLogger('test', 'silent'), 50);
  const v = new DirectoryView();
  const a = testNode('a', 2);
  const b = testNode('b', 3, ['default'], { kind: 'client' });
  const pending = testNode('p', 4, ['default'], { enrolKey: keyOf('p'), enrolExpiresAt: Date.now() + 60_000 });
  v.apply(feed(1, [a, b, pending], [], true));
  assert.deepEqual(await sync.full(v.all()), { set: 3, removed: 1 });
  assert.deepEqual([...dev.peers.keys()].sort(), [keyOf('a'), keyOf('b'), keyOf('p')].sort());
  assert.deepEqual(dev.peers.get(keyOf('p')), ['10.99.1.4/32', 'fd3c:1a2b:3c4d:1::4/128'], 'a pending node is only its join key, on the join tunnel\'s addresses');

  dev.reads = 0;
  dev.sets = [];
  const a2 = { ...a, routes: [Cidr.parse('192.168.7.0/24')], revision: 2 };
  const joined = { ...pending, publicKey: keyOf('p-device'), enrolUsed: true, revision: 3 };
  const delta = v.apply(feed(4, [a2, joined], [b]));
  assert.deepEqual(await sync.apply(delta), { set: 2, removed: 1 });
  assert.equal(dev.reads, 0, 'no device read for a change');
  assert.deepEqual(
    dev.sets.flatMap((s) => s.peers ?? []).map((p) => [p.publicKey === keyOf('b') ? 'b' : p.publicKey === keyOf('a') ? 'a' : 'p-device', p.remove ?? false, p.allowedIps ?? null]),
    [
      ['b', true, null],
      ['a', false, ['10.99.0.2/32', 'fd3c:1a2b:3c4d::2/128', '192.168.7.0/24']],
      ['p-device', false, ['10.99.0.4/32', 'fd3c:1a2b:3c4d::4/128']],
    ],
    'removals first',
  );
  assert.ok(dev.peers.has(keyOf('p')), 'the used join key stays while the enrolment reply goes out through it');
  await new Promise((r) => setTimeout(r, 150));
  assert.ok(!dev.peers.has(keyOf('p')), 'then it is nobody\'s peer, not for the 24 h grace (issue 10, finding 6)');

  // Someone removed a peer by hand: only the full diff notices, and puts it back.
  dev.peers.delete(keyOf('a'));
  assert.deepEqual(await sync.full(v.all()), { set: 1, removed: 0 });
});
