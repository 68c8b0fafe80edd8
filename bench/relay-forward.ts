/**
 * Relay forwarding of 1400-byte WireGuard-shaped (transport) datagrams, synthetic load, no
 * WireGuard. Three lab hosts on one segment: a sender, the relay, a receiver. The relay runs
 * either with its kernel fast path (default) or in userspace only, pinned to one core (--userspace).
 *
 * One Node sender offers only ~0.8 Gbit/s, so --pairs N runs N sender/receiver pairs, each its
 * own allocation (on 2 cores the extra processes starve each other: 0.48-0.83 Gbit/s with 2).
 *
 *   node dist/bench/relay-forward.js [--runs 5] [--seconds 5] [--pairs 1] [--userspace]
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../src/core/exec.js';
import { generateKeyPair } from '../src/core/wireguard/keys.js';
import { fakeInitiation, fakeTransport } from '../src/lab/fake-wireguard.js';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { parseTopology } from '../src/lab/topology.js';
import { argNumber, median, progress, rssMiB } from './stats.js';

const SELF = fileURLToPath(import.meta.url);
const RELAY_HOST = fileURLToPath(new URL('../src/lab/relay-host.js', import.meta.url));
const SIZE = 1400;
const RELAY = '203.0.113.2';

/** Sender or receiver, run inside a lab host: latch with a handshake, then flood or count. */
async function endpoint(role: string, peerKey: string, relayPort: number, seconds: number): Promise<void> {
  const s = createSocket({ type: 'udp4', sendBufferSize: 8 << 20, recvBufferSize: 8 << 20 });
  await new Promise<void>((r) => s.bind(0, r));
  s.send(fakeInitiation(peerKey), relayPort, RELAY);
  if (role === 'receiver') {
    let bytes = 0;
    s.on('message', (m) => (bytes += m.length));
    process.stdin.once('data', () => {
      process.stdout.write(JSON.stringify({ bytes }) + '\n');
      process.exit(0);
    });
    process.stdout.write('ready\n');
    return;
  }
  await new Promise((r) => setTimeout(r, 300));
  const packet = fakeTransport(SIZE);
  let sent = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 64; i++) s.send(packet, relayPort, RELAY);
    sent += 64;
    await new Promise((r) => setImmediate(r));
  }
  process.stdout.write(JSON.stringify({ sent }) + '\n');
  process.exit(0);
}

async function main(): Promise<void> {
  teardownOnExit();
  const runs = argNumber('runs', 5);
  const seconds = argNumber('seconds', 5);
  const userspace = process.argv.includes('--userspace');
  const pairs = argNumber('pairs', 1);
  const results: { gbps: number; lossPct: number; relayRssMiB: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const lab = await Lab.up(
      parseTopology({
        name: `bfwd${process.pid % 1000}${i}`,
        hosts: [
          { name: 'relay', network: 'internet', address: RELAY },
          { name: 'src', network: 'internet', address: '203.0.113.10' },
          { name: 'dst', network: 'internet', address: '203.0.113.20' },
        ],
      }),
    );
    try {
      const keys = Array.from({ length: pairs }, () => [generateKeyPair().publicKey, generateKeyPair().publicKey]);
      const relayArgs = [RELAY_HOST, '--address', RELAY, '--ports', '47000-47100', ...keys.flatMap(([a, b], k) => ['--allocate', `p${k},${a},203.0.113.10,${b},203.0.113.20`]), ...(userspace ? ['--userspace'] : [])];
      const pid = userspace ? lab.spawn('relay', 'relay', 'taskset', ['-c', '1', process.execPath, ...relayArgs]) : lab.spawn('relay', 'relay', process.execPath, relayArgs);
      const log = join(lab.logDir, 'relay.relay.log');
      while (!readFileSync(log, 'utf8').includes('ready')) await new Promise((r) => setTimeout(r, 50));
      // Allocation k has ports 47000+2k (side A, the sender's) and 47001+2k (side B, the receiver's).
      const receivers = keys.map(([a], k) => spawn('ip', ['netns', 'exec', lab.ns('dst'), process.execPath, SELF, 'receiver', a, String(47001 + 2 * k), String(seconds)], { stdio: ['pipe', 'pipe', 'inherit'] }));
      await Promise.all(receivers.map((rc) => new Promise<void>((r) => rc.stdout.once('data', () => r()))));
      const t0 = performance.now();
      const senders = await Promise.all(keys.map(([, b], k) => run('ip', ['netns', 'exec', lab.ns('src'), process.execPath, SELF, 'sender', b, String(47000 + 2 * k), String(seconds)], { timeoutMs: (seconds + 20) * 1000 })));
      await new Promise((r) => setTimeout(r, 200));
      const elapsed = (performance.now() - t0 - 200 - 300) / 1000;
      const counts = await Promise.all(
        receivers.map((rc) => {
          rc.stdin.write('x\n');
          return new Promise<string>((r) => rc.stdout.once('data', (d: Buffer) => r(d.toString())));
        }),
      );
      const got = { bytes: counts.reduce((sum, c) => sum + (JSON.parse(c) as { bytes: number }).bytes, 0) };
      const sent = senders.reduce((sum, x) => sum + (JSON.parse(x.stdout) as { sent: number }).sent, 0);
      const relayRss = rssMiB(userspace ? Number((await run('pgrep', ['-P', String(pid)], { allowFail: true })).stdout.trim() || pid) : pid);
      results.push({ gbps: (got.bytes * 8) / elapsed / 1e9, lossPct: 100 * (1 - got.bytes / (sent * SIZE)), relayRssMiB: relayRss });
      progress(`run ${i + 1}/${runs}: ${results[i].gbps.toFixed(2)} Gbit/s forwarded, ${results[i].lossPct.toFixed(1)} % of the offered load lost`);
    } finally {
      await lab.down();
    }
  }
  const round = (x: number) => Math.round(x * 1000) / 1000;
  console.log(
    JSON.stringify(
      {
        benchmark: 'relay-forward',
        mode: userspace ? 'userspace, relay pinned to one core' : 'kernel fast path (nftables)',
        pairs,
        datagramBytes: SIZE,
        forwardedGbps: { runs: results.map((r) => round(r.gbps)), median: round(median(results.map((r) => r.gbps))), target: 1, anchor: 0.5 },
        offeredLossPct: round(median(results.map((r) => r.lossPct))),
        relayRssMiB: median(results.map((r) => r.relayRssMiB)),
      },
      null,
      2,
    ),
  );
}

if (process.argv[2] === 'sender' || process.argv[2] === 'receiver') await endpoint(process.argv[2], process.argv[3], Number(process.argv[4]), Number(process.argv[5]));
else await main();
