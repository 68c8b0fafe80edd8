import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import { test } from 'node:test';
import { IpAddress } from '../../../src/core/net/address.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { fakeInitiation, fakeResponse, senderIndex } from '../../../src/lab/fake-wireguard.js';
import { KernelPath, type Leg } from '../../../src/relay/kernel-path.js';
import { Relay } from '../../../src/relay/relay.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const A = generateKeyPair().publicKey;
const B = generateKeyPair().publicKey;

/**
 * A kernel path that touches no nftables: it records what it holds, and its removals wait until
 * the test lets them finish (an `nft` run on a loaded relay takes tens of milliseconds or more).
 */
function fakeKernel(address: IpAddress) {
  const held = new Map<string, { a: Leg; b: Leg }>();
  let finishRemoval: () => void = () => undefined;
  let removal = Promise.resolve();
  const k = Object.create(KernelPath.prototype) as KernelPath;
  Object.assign(k, {
    relayIp: address,
    mode: 'ingress',
    tableName: 'fake',
    install: async (id: string, a: Leg, b: Leg) => void held.set(id, { a, b }),
    remove: async (id: string) => {
      await removal;
      held.delete(id);
      return undefined;
    },
    flush: async () => undefined,
    counters: async () => new Map(),
    close: async () => held.clear(),
  });
  return {
    k,
    held,
    /** Removals from now on wait for release(). */
    slow(): () => void {
      removal = new Promise<void>((r) => (finishRemoval = r));
      return () => finishRemoval();
    },
  };
}

/**
 * The kernel path never takes a loopback node (that is a stream side): the nodes and the relay use
 * an address of this machine's own, which the kernel delivers locally; nothing leaves the machine.
 */
const OWN = Object.values(networkInterfaces())
  .flat()
  .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address;

function socket(): Promise<Socket & { port: number }> {
  return new Promise((resolve) => {
    const s = createSocket('udp4') as Socket & { port: number };
    s.bind(0, OWN, () => {
      s.port = s.address().port;
      resolve(s);
    });
  });
}

test('a released pair that the kernel still forwards keeps its relay ports until the kernel let go: a new allocation gets others, so its handshake reaches its own sockets', { skip: OWN === undefined && 'no non-loopback IPv4 address on this machine' }, async () => {
  const own = OWN!;
  const ip = IpAddress.parse(own);
  const kernel = fakeKernel(ip);
  const relay = new Relay({ addresses: [ip], portMin: 45710, portMax: 45719, kernel: kernel.k });
  const [a, b] = [await socket(), await socket()];
  try {
    const first = await relay.allocate('one', { publicKey: A, ip: own }, { publicKey: B, ip: own });
    // Confirm both sides (B initiates, A answers): the pair goes into the kernel.
    const ib = fakeInitiation(A);
    a.send(fakeInitiation(B), first.portA, own);
    await sleep(30);
    b.send(ib, first.portB, own);
    await sleep(30);
    a.send(fakeResponse(B, senderIndex(ib)), first.portA, own);
    for (let i = 0; i < 40 && !kernel.held.has('one'); i++) await sleep(25);
    assert.ok(kernel.held.has('one'), 'the confirmed pair is in the kernel');

    const done = kernel.slow();
    relay.release('one');
    const second = await relay.allocate('two', { publicKey: A, ip: own }, { publicKey: B, ip: own });
    assert.ok(kernel.held.has('one'), 'the kernel still forwards the released pair');
    assert.deepEqual([second.portA, second.portB].filter((p) => p === first.portA || p === first.portB), [], 'so its ports are not handed out again yet');

    done();
    for (let i = 0; i < 40 && kernel.held.has('one'); i++) await sleep(25);
    assert.equal(kernel.held.has('one'), false);
    const third = await relay.allocate('three', { publicKey: A, ip: own }, { publicKey: B, ip: own });
    assert.deepEqual([third.portA, third.portB].sort(), [first.portA, first.portB].sort(), 'once the kernel let go, the ports are free again');
  } finally {
    a.close();
    b.close();
    await relay.close();
  }
});
