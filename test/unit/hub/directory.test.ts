import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { clientConfig, proxiedConfig } from '../../../src/core/configs.js';
import { Store } from '../../../src/core/store.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { parseWgQuick } from '../../../src/core/wgquick.js';
import { addNode, hashToken } from '../../../src/hub/directory.js';
import { writeNodeFiles } from '../../../src/hub/files.js';

let dir: string;
let store: Store;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgp2p-dir-'));
  const k = generateKeyPair();
  store = Store.create(dir, {
    ...k,
    endpoint: '203.0.113.2:51820',
    address: '10.99.0.1/24',
    proxiedSubnet: '10.99.1.0/24',
    listenPort: 51820,
    apiPort: 51821,
    clientHubKeepalive: 1,
    peerKeepalive: 25,
    agentHubKeepalive: 25,
    staleAfterSec: 120,
  });
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('addresses are allocated in order and proxied addresses mirror them', () => {
  const a = addNode(store, { name: 'device', kind: 'agent' }).node;
  const c = addNode(store, { name: 'phone', kind: 'client' }).node;
  assert.equal(a.address, '10.99.0.2');
  assert.equal(c.address, '10.99.0.3');
  assert.equal(c.proxiedAddress, '10.99.1.3');
  assert.equal(c.listenPort, 41003, 'clients get distinct listen ports');
});

test('bad input is refused with the problem named, and nothing is stored', () => {
  addNode(store, { name: 'device', kind: 'agent' });
  const cases: [Parameters<typeof addNode>[1], RegExp][] = [
    [{ name: 'Bad_Name', kind: 'client' }, /node name "Bad_Name" is invalid/],
    [{ name: 'a-name-that-is-too-long', kind: 'client' }, /is invalid: use 1-15/],
    [{ name: 'device', kind: 'client' }, /already exists/],
    [{ name: 'x', kind: 'client', address: '10.99.0.2' }, /already used by node "device"/],
    [{ name: 'x', kind: 'client', address: '10.99.0.1' }, /already used by the hub/],
    [{ name: 'x', kind: 'client', address: '10.98.0.5' }, /outside the network 10\.99\.0\.0\/24/],
    [{ name: 'x', kind: 'client', address: '10.99.0.300' }, /not an IPv4 address/],
    [{ name: 'x', kind: 'agent', endpoint: 'nohostport' }, /--endpoint "nohostport" must be HOST:PORT/],
    [{ name: 'x', kind: 'agent', routes: ['192.168.1.1/24'] }, /route "192\.168\.1\.1\/24" is not a subnet/],
    [{ name: 'x', kind: 'agent', routes: ['10.99.0.0/25'] }, /overlaps the tunnel network/],
  ];
  for (const [input, message] of cases) assert.throws(() => addNode(store, input), message);
  assert.deepEqual(store.nodes().map((n) => n.name), ['device']);
});

test('agent files: token only as a hash in the store, files mode 0600', () => {
  const { node, token } = addNode(store, { name: 'device', kind: 'agent' });
  assert.ok(token && token.length >= 40);
  assert.equal(node.tokenHash, hashToken(token));
  const files = writeNodeFiles(dir, store, node, token);
  for (const f of [files.conf, files.agentJson!]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
  const conf = parseWgQuick(readFileSync(files.conf, 'utf8'));
  assert.equal(conf.peers.length, 1, 'an agent config has only the hub as a peer');
  assert.deepEqual(conf.peers[0].allowedIps, ['10.99.0.1/32', '10.99.1.0/24']);
  assert.equal(conf.peers[0].persistentKeepalive, 25);
});

test('client configs: P2P has hub + each agent at its endpoint; proxied has only the hub', () => {
  addNode(store, { name: 'device', kind: 'agent', endpoint: 'home.example.org:51820', routes: ['192.168.10.0/24'] });
  const c = addNode(store, { name: 'phone', kind: 'client' }).node;
  const hub = store.hub();
  const agents = store.nodes().filter((n) => n.kind === 'agent');
  const p2p = clientConfig(hub, c, agents);
  assert.equal(p2p.interface.listenPort, 41003);
  assert.deepEqual(p2p.peers.map((p) => p.endpoint), ['203.0.113.2:51820', 'home.example.org:51820']);
  assert.deepEqual(p2p.peers[1].allowedIps, ['10.99.0.2/32', '192.168.10.0/24']);
  assert.equal(p2p.peers[0].persistentKeepalive, 1);
  const proxied = proxiedConfig(hub, c, agents);
  assert.equal(proxied.peers.length, 1);
  assert.deepEqual(proxied.peers[0].allowedIps, ['10.99.0.0/24', '10.99.1.0/24', '192.168.10.0/24']);
  assert.deepEqual(proxied.interface.address, ['10.99.1.3/24']);
});

test('a missing or corrupt store is reported, not created', () => {
  const empty = mkdtempSync(join(tmpdir(), 'wgp2p-empty-'));
  assert.throws(() => Store.open(empty), /no hub store at .*hub init/);
  writeFileSync(join(empty, 'hub.sqlite'), 'this is not sqlite');
  assert.throws(() => Store.open(empty), /corrupt or not a wgp2p store/);
  rmSync(empty, { recursive: true });
});
