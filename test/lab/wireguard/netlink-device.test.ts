import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { test } from 'node:test';
import { run } from '../../../src/core/exec.js';
import { Cidr } from '../../../src/core/net/cidr.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { GenlClient } from '../../../src/core/netlink/client.js';
import { netlinkUnavailable } from '../../../src/core/netlink/transport.js';
import { openDevice, parseDump } from '../../../src/core/wireguard/device.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { getDeviceAttributes, setDeviceBodies, WG_CMD_GET_DEVICE, WG_GENL_NAME, WG_GENL_VERSION } from '../../../src/core/wireguard/netlink-codec.js';
import { NetlinkDevice } from '../../../src/core/wireguard/netlink-device.js';
import { kernelWireGuardProblem } from '../../../src/lab/data-plane.js';
import { scaled } from '../../../src/lab/time-scale.js';
import { uniqueIfname } from '../helpers.js';

/**
 * NetlinkDevice against the kernel's own WireGuard (`npm run test:kernel` runs this in the guest;
 * on a machine without the module it is skipped). The interface lives in this process's
 * namespace, because a netlink socket reads the namespace it was opened in; its only peer
 * endpoint is on loopback, so nothing it sends leaves the machine.
 */
const skip = netlinkUnavailable() ?? (await kernelWireGuardProblem());

async function withKernelInterface(stem: string, fn: (ifname: string, dev: NetlinkDevice) => Promise<void>): Promise<void> {
  const ifname = uniqueIfname(stem);
  await run('ip', ['link', 'add', ifname, 'type', 'wireguard']);
  let dev: NetlinkDevice | undefined;
  try {
    const opened = await NetlinkDevice.open(ifname);
    assert.ok(opened instanceof NetlinkDevice, `NetlinkDevice.open(${ifname}) said ${String(opened)}`);
    dev = opened;
    await fn(ifname, dev);
  } finally {
    dev?.close();
    await run('ip', ['link', 'del', ifname], { allowFail: true });
  }
}

/** The first datagram `sock` receives, or a rejection naming what did not arrive. */
function nextDatagram(sock: Socket, ms: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: nothing arrived within ${ms} ms`)), ms);
    sock.once('message', (msg) => {
      clearTimeout(timer);
      resolve(msg);
    });
  });
}

const sortedCidrs = (ips: readonly string[]) => ips.map((ip) => Cidr.parse(ip).toString()).sort();

test('a kernel interface over netlink: a peer set with endpoint and keepalive reads back, the keepalive reset sends at once, remove takes it away', { skip }, async () => {
  await withKernelInterface('wgnl', async (ifname, dev) => {
    assert.equal((await openDevice(ifname)).kind, 'netlink', 'openDevice reads a kernel interface over netlink, not wg(8)');
    const own = generateKeyPair();
    await dev.set({ privateKey: own.privateKey, listenPort: 0 });
    assert.equal((await dev.get()).publicKey, own.publicKey);
    await run('ip', ['link', 'set', ifname, 'up']);

    const sink = createSocket('udp4');
    await new Promise<void>((res) => sink.bind(0, '127.0.0.1', () => res()));
    try {
      const endpoint = Endpoint.parse(`127.0.0.1:${sink.address().port}`);
      const peer = generateKeyPair().publicKey;
      const allowedIps = ['10.99.0.2/32', 'fd99::2/128'];
      await dev.set({ peers: [{ publicKey: peer, endpoint, persistentKeepalive: 0, allowedIps }] });
      const read = (await dev.get()).peers.find((p) => p.publicKey === peer);
      assert.ok(read, 'the peer is on the device');
      assert.equal(read.endpoint?.toString(), endpoint.toString());
      assert.equal(read.persistentKeepalive, 0);
      assert.deepEqual(sortedCidrs(read.allowedIps), sortedCidrs(allowedIps));

      // The agent's punch (agent/paths/path.ts): 0 then 25 in one update, two entries for one peer.
      const initiation = nextDatagram(sink, scaled(5000), 'a handshake initiation after the keepalive reset');
      await dev.set({ peers: [{ publicKey: peer, persistentKeepalive: 0 }, { publicKey: peer, persistentKeepalive: 25 }] });
      const msg = await initiation;
      assert.equal(msg[0], 1, 'message type 1: handshake initiation');
      assert.equal(msg.length, 148);
      const after = (await dev.get()).peers.find((p) => p.publicKey === peer);
      assert.equal(after?.persistentKeepalive, 25);
      assert.equal(after?.endpoint?.toString(), endpoint.toString(), 'the keepalive entries leave the endpoint alone');

      await dev.set({ peers: [{ publicKey: peer, remove: true }] });
      assert.deepEqual((await dev.get()).peers, []);
    } finally {
      sink.close();
    }
  });
});

test('3,000 allowed IPs on one peer: the set is split across messages, the dump across parts, and both read back whole', { skip }, async () => {
  await withKernelInterface('wgnb', async (ifname, dev) => {
    const big = generateKeyPair().publicKey;
    const next = generateKeyPair().publicKey;
    // 2,000 IPv4 and 1,000 IPv6 host routes: both attribute sizes, and too many for one message either way.
    const v4 = Array.from({ length: 2000 }, (_, i) => `10.${100 + (i >> 8)}.${i & 255}.1/32`);
    const v6 = Array.from({ length: 1000 }, (_, i) => `fd42::${i.toString(16)}:1/128`);
    const allowedIps = [...v4, ...v6];
    const update = { peers: [{ publicKey: big, allowedIps, persistentKeepalive: 25 }, { publicKey: next, allowedIps: ['192.168.77.0/24'] }] };
    assert.ok(setDeviceBodies(ifname, update).length > 1, 'the update needs more than one WG_CMD_SET_DEVICE message');
    await dev.set(update);

    const client = new GenlClient();
    try {
      const family = await client.family(WG_GENL_NAME);
      const dump = await client.dump(family.id, WG_CMD_GET_DEVICE, WG_GENL_VERSION, getDeviceAttributes(ifname), 'the raw dump');
      assert.ok(dump.parts.length > 1, `the kernel answered in ${dump.parts.length} part(s); 3,000 allowed IPs need several`);
    } finally {
      client.close();
    }

    const state = await dev.get();
    assert.deepEqual(state.peers.map((p) => p.publicKey).sort(), [big, next].sort(), 'each peer once, though the big one spans several parts');
    const read = state.peers.find((p) => p.publicKey === big)!;
    assert.equal(read.allowedIps.length, 3000);
    assert.deepEqual(sortedCidrs(read.allowedIps), sortedCidrs(allowedIps), 'later messages add to the allowed IPs, only the first replaces them');
    assert.equal(read.persistentKeepalive, 25);
    assert.deepEqual(state.peers.find((p) => p.publicKey === next)!.allowedIps, ['192.168.77.0/24']);

    // wg(8) reads the same kernel state.
    const tool = parseDump((await run('wg', ['show', ifname, 'dump'])).stdout).peers.find((p) => p.publicKey === big)!;
    assert.deepEqual(sortedCidrs(tool.allowedIps), sortedCidrs(read.allowedIps));

    // Replacing shrinks it again in one message.
    await dev.set({ peers: [{ publicKey: big, allowedIps: ['10.200.0.1/32'] }] });
    assert.deepEqual((await dev.get()).peers.find((p) => p.publicKey === big)!.allowedIps, ['10.200.0.1/32']);
  });
});
