import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import { GenlClient } from '../../../../src/core/netlink/client.js';
import { decodeAttributes, LITTLE_ENDIAN } from '../../../../src/core/netlink/message.js';
import { netlinkUnavailable } from '../../../../src/core/netlink/transport.js';
import { Endpoint } from '../../../../src/core/net/endpoint.js';
import { WGDEVICE_A } from '../../../../src/core/wireguard/netlink-codec.js';
import { NetlinkDevice } from '../../../../src/core/wireguard/netlink-device.js';
import { FakeKernel } from './fake-kernel.js';

const le = { skip: !LITTLE_ENDIAN && 'the fake kernel writes little-endian' };

function kernelWithPeers(n: number): FakeKernel {
  const k = new FakeKernel();
  k.peers = Array.from({ length: n }, (_, i) => ({ key: Buffer.alloc(32, i + 1), keepalive: i, allowedIps: [[10, 0, i, 1, 32], [10, 0, i, 2, 32], [10, 0, i, 3, 32]] }));
  return k;
}

test('the device reads a multi-part dump on one socket: every peer once, with all its allowed IPs, read after read', le, async () => {
  const k = kernelWithPeers(5);
  const dev = await NetlinkDevice.open('wg0', new GenlClient({ transport: k.transport }));
  assert.ok(dev instanceof NetlinkDevice);
  for (let i = 0; i < 3; i++) {
    const state = await dev.get();
    assert.equal(state.listenPort, 51820);
    assert.deepEqual(
      state.peers.map((p) => [p.publicKey, p.persistentKeepalive, p.allowedIps.length]),
      k.peers.map((p) => [p.key.toString('base64'), p.keepalive, 3]),
    );
  }
  assert.deepEqual(state0Ips(await dev.get()), ['10.0.0.1/32', '10.0.0.2/32', '10.0.0.3/32']);
  dev.close();
});
const state0Ips = (s: { peers: { allowedIps: string[] }[] }) => s.peers[0].allowedIps;

test('a dump the kernel flags as interrupted is read again', le, async () => {
  const k = kernelWithPeers(3);
  const dev = await NetlinkDevice.open('wg0', new GenlClient({ transport: k.transport }));
  assert.ok(dev instanceof NetlinkDevice);
  const before = k.dumps;
  k.interruptNext = true;
  assert.equal((await dev.get()).peers.length, 3);
  assert.equal(k.dumps - before, 2);
  dev.close();
});

test('opening says why an interface is not a kernel WireGuard one: no module, no such interface', le, async () => {
  const none = new FakeKernel();
  none.module = false;
  assert.equal(await NetlinkDevice.open('wg0', new GenlClient({ transport: none.transport })), 'no-module');
  assert.equal(await NetlinkDevice.open('wg9', new GenlClient({ transport: new FakeKernel().transport })), 'no-device');
});

test('set sends the update as WG_CMD_SET_DEVICE messages and waits for each acknowledgement', le, async () => {
  const k = kernelWithPeers(1);
  const dev = await NetlinkDevice.open('wg0', new GenlClient({ transport: k.transport }));
  assert.ok(dev instanceof NetlinkDevice);
  const key = Buffer.alloc(32, 9).toString('base64');
  await dev.set({ peers: [{ publicKey: key, endpoint: Endpoint.parse('192.0.2.7:4000'), persistentKeepalive: 25 }] });
  assert.equal(k.sets.length, 1);
  const peers = decodeAttributes(k.sets[0]).find((a) => a.type === WGDEVICE_A.PEERS);
  assert.ok(peers);
  await assert.rejects(dev.set({ peers: [{ publicKey: 'not a key' }] }), /not a WireGuard key/);
  assert.equal(k.sets.length, 1, 'a refused update sends nothing');
  dev.close();
});

test('a kernel that does not answer fails the read within the deadline, and the socket stays usable', le, async () => {
  const k = kernelWithPeers(1);
  const client = new GenlClient({ transport: k.transport, timeoutMs: 300 });
  const dev = await NetlinkDevice.open('wg0', client);
  assert.ok(dev instanceof NetlinkDevice);
  k.silent = true;
  await assert.rejects(dev.get(), /did not answer within 300 ms/);
  k.silent = false;
  assert.equal((await dev.get()).peers.length, 1);
  dev.close();
  await assert.rejects(dev.get(), /closed/);
});

test('this machine\'s kernel answers a family lookup on a real socket (the controller itself, nlctrl)', { skip: netlinkUnavailable() }, async () => {
  const client = new GenlClient();
  try {
    const f = await client.family('nlctrl');
    assert.equal(f.id, 0x10);
    assert.equal(f.name, 'nlctrl');
    await assert.rejects(client.family('wgp2p-none'), (err: Error & { errno?: number }) => err.errno === 2);
  } finally {
    client.close();
  }
});

test('an answer that arrived while the process was stalled past the deadline is read, not reported as missing', le, async () => {
  // The fake kernel's replies travel over a loopback socket, so they are I/O the event loop must
  // read; the process then stalls past the deadline right after the reply was sent (a loaded
  // machine descheduling it), and the timer is due before the socket is read.
  const k = kernelWithPeers(1);
  const rx = createSocket('udp4');
  const tx = createSocket('udp4');
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', () => r()));
  let stall = false;
  const transport = (events: Parameters<typeof k.transport>[0]) => {
    rx.on('message', (d) => events.onDatagram(d));
    return k.transport({
      onError: events.onError,
      onDatagram: (d) =>
        tx.send(d, rx.address().port, '127.0.0.1', () => {
          if (!stall) return;
          const until = performance.now() + 400;
          while (performance.now() < until);
        }),
    });
  };
  const client = new GenlClient({ transport, timeoutMs: 100 });
  try {
    const dev = await NetlinkDevice.open('wg0', client);
    assert.ok(dev instanceof NetlinkDevice);
    stall = true;
    assert.equal((await dev.get()).peers.length, 1);
  } finally {
    client.close();
    rx.close();
    tx.close();
  }
});
