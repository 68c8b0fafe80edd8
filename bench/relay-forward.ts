/**
 * Relay forwarding of 1400-byte WireGuard-shaped (transport) datagrams, synthetic load, no WireGuard.
 * The relay runs in its own process pinned to one core (taskset); a sender and a counter run on
 * the other core. Loopback only.
 *
 *   node dist/bench/relay-forward.js [--seconds 5] [--runs 5] [--allocations 1]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '../src/core/wireguard/keys.js';
import { blake2s } from '../src/core/wireguard/blake2s.js';
import { mac1Key } from '../src/core/wireguard/packet.js';
import { Relay } from '../src/relay/relay.js';
import { argNumber, median, progress, rssMiB } from './stats.js';

const seconds = argNumber('seconds', 5);
const runs = argNumber('runs', 5);
const SELF = fileURLToPath(import.meta.url);
const SIZE = 1400;

function initiation(responder: string): Buffer {
  const msg = Buffer.concat([Buffer.from([1, 0, 0, 0]), randomBytes(112), Buffer.alloc(32)]);
  blake2s(msg.subarray(0, 116), 16, mac1Key(Buffer.from(responder, 'base64'))).copy(msg, 116);
  return msg;
}

async function relayProcess(): Promise<void> {
  const [aKey, bKey] = process.argv.slice(3, 5);
  const relay = new Relay({ address: '127.0.0.1', portMin: 48000, portMax: 48010 });
  const { portA, portB } = await relay.allocate('bench', { publicKey: aKey, ip: '127.0.0.1' }, { publicKey: bKey, ip: '127.0.0.1' });
  process.stdout.write(JSON.stringify({ portA, portB }) + '\n');
  process.stdin.on('data', () => {
    process.stdout.write(JSON.stringify({ stats: relay.stats()[0], rssMiB: rssMiB(process.pid) }) + '\n');
  });
}

function lines(child: ChildProcess): AsyncIterator<string> {
  let buf = '';
  const queue: string[] = [];
  let wake: (() => void) | undefined;
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      queue.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    wake?.();
  });
  return {
    async next() {
      while (queue.length === 0) await new Promise<void>((r) => (wake = r));
      return { value: queue.shift()!, done: false };
    },
  };
}

async function oneRun(): Promise<{ gbps: number; pps: number; lossPct: number; relayRssMiB: number }> {
  const a = generateKeyPair().publicKey;
  const b = generateKeyPair().publicKey;
  const child = spawn('taskset', ['-c', '1', process.execPath, SELF, 'relay', a, b], { stdio: ['pipe', 'pipe', 'inherit'] });
  const out = lines(child);
  const { portA, portB } = JSON.parse((await out.next()).value) as { portA: number; portB: number };
  const sa = createSocket({ type: 'udp4', sendBufferSize: 8 << 20 });
  const sb = createSocket({ type: 'udp4', recvBufferSize: 8 << 20 });
  await Promise.all([new Promise<void>((r) => sa.bind(0, '127.0.0.1', r)), new Promise<void>((r) => sb.bind(0, '127.0.0.1', r))]);
  let received = 0;
  sb.on('message', (m) => (received += m.length));
  sa.send(initiation(b), portA, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 50));
  sb.send(initiation(a), portB, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 100));
  received = 0;
  const packet = Buffer.concat([Buffer.from([4, 0, 0, 0]), randomBytes(SIZE - 4)]);
  let sent = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  // Send in bursts, yielding so the counter on this core can drain its socket.
  while (performance.now() < end) {
    for (let i = 0; i < 64; i++) sa.send(packet, portA, '127.0.0.1');
    sent += 64;
    await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 200));
  const elapsed = (performance.now() - t0 - 200) / 1000;
  child.stdin!.write('stats\n');
  const { rssMiB: relayRss } = JSON.parse((await out.next()).value) as { rssMiB: number };
  child.kill();
  sa.close();
  sb.close();
  return { gbps: (received * 8) / elapsed / 1e9, pps: received / SIZE / elapsed, lossPct: 100 * (1 - received / (sent * SIZE)), relayRssMiB: relayRss };
}

if (process.argv[2] === 'relay') {
  await relayProcess();
} else {
  const results = [];
  for (let i = 0; i < runs; i++) {
    results.push(await oneRun());
    progress(`run ${i + 1}/${runs}: ${results[i].gbps.toFixed(2)} Gbit/s forwarded`);
  }
  const round = (x: number) => Math.round(x * 1000) / 1000;
  console.log(
    JSON.stringify(
      {
        benchmark: 'relay-forward',
        datagramBytes: SIZE,
        relayCores: 1,
        forwardedGbps: { runs: results.map((r) => round(r.gbps)), median: round(median(results.map((r) => r.gbps))), target: 1, anchor: 0.5 },
        forwardedPps: Math.round(median(results.map((r) => r.pps))),
        offeredLossPct: round(median(results.map((r) => r.lossPct))),
        relayRssMiB: median(results.map((r) => r.relayRssMiB)),
      },
      null,
      2,
    ),
  );
}
