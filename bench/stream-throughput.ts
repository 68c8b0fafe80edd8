/**
 * The stream transport (issue 12) against plain UDP, on loopback, without WireGuard: how many
 * 1452-byte datagrams (a full WireGuard datagram at MTU 1420) per second get through
 *   direct:     sender -> receiver, UDP;
 *   tls:        sender -> shim's local port -> TLS -> relay stream side -> receiver (as the hub's WireGuard);
 *   websocket:  the same with WebSocket over the TLS;
 * and the round trip of a 100-byte datagram on each (the receiver echoes it).
 *
 * The relay and the shim each run in a process of their own (forked from this file), as they
 * would on two machines; the sender and receiver (the two WireGuards) share this one. The
 * sender keeps at most --window datagrams unanswered (counted at the receiver), like a TCP
 * window inside the tunnel, so neither path is measured by how much it drops. Rates are over
 * --seconds per run, --runs runs per path, interleaved (direct, tls, websocket, direct, ...) so
 * the machine's load falls on all of them alike.
 *
 *   node dist/bench/stream-throughput.js [--runs 5] [--seconds 3] [--window 128]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { StreamShim } from '../src/agent/stream-shim.js';
import { IpAddress } from '../src/core/net/address.js';
import { Endpoint, HostPort } from '../src/core/net/endpoint.js';
import type { StreamTransport } from '../src/core/stream/connect.js';
import { generateTlsIdentity } from '../src/core/stream/tls-identity.js';
import { generateKeyPair } from '../src/core/wireguard/keys.js';
import { fakeTransport } from '../src/lab/fake-wireguard.js';
import { StreamServer } from '../src/relay/stream-server.js';
import { argNumber, progress, summary } from './stats.js';

const SELF = fileURLToPath(import.meta.url);
const silent = pino({ level: 'silent' });
const TOKEN = 'b'.repeat(43);

type Msg = { port: number } | { error: string };

/** Child: the relay's stream side, its hub channel pointed at the receiver. */
async function relayRole(): Promise<void> {
  const [cert, key, receiverPort] = [process.env.BENCH_CERT!, process.env.BENCH_KEY!, Number(process.env.BENCH_RECEIVER)];
  const server = new StreamServer({
    tls: { cert, key },
    authenticate: (_k, t) => t === TOKEN,
    streamSide: () => ({ kind: 'unknown' }),
    hub: { endpoint: Endpoint.of(IpAddress.parse('127.0.0.1'), receiverPort), source: IpAddress.parse('127.0.0.1') },
    limits: { maxQueued: 4 << 20 },
    log: silent,
  });
  process.send!({ port: await server.listen('127.0.0.1', 0) } satisfies Msg);
}

/** Child: the agent's shim, WireGuard (the sender) at BENCH_SENDER. */
async function shimRole(): Promise<void> {
  const shim = new StreamShim({
    relay: HostPort.parse(`127.0.0.1:${process.env.BENCH_RELAY}`),
    trust: { pin: process.env.BENCH_PIN! },
    transport: process.env.BENCH_TRANSPORT as StreamTransport,
    proxy: null,
    credentials: { publicKey: generateKeyPair().publicKey, token: TOKEN },
    wireguard: Endpoint.of(IpAddress.parse('127.0.0.1'), Number(process.env.BENCH_SENDER)),
    maxQueued: 4 << 20,
    log: silent,
  });
  const local = await shim.open({ kind: 'hub' });
  shim.start();
  for (let i = 0; i < 500 && shim.state.kind !== 'up'; i++) await new Promise((r) => setTimeout(r, 10));
  process.send!(shim.state.kind === 'up' ? ({ port: local.port } satisfies Msg) : { error: `shim not up: ${JSON.stringify(shim.state)}` });
}

function bound(): Promise<Socket> {
  return new Promise((resolve) => {
    const s = createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
    s.bind(0, '127.0.0.1', () => resolve(s));
  });
}

function child(env: Record<string, string>): Promise<{ proc: ChildProcess; port: number }> {
  const proc = fork(SELF, [], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    proc.once('message', (m: Msg) => ('port' in m ? resolve({ proc, port: m.port }) : reject(new Error(m.error))));
    proc.once('exit', (code) => reject(new Error(`${env.BENCH_ROLE} exited with ${code}`)));
  });
}

/** Datagrams of `size` bytes per second from `sender` to `to`, at most `window` unanswered. */
async function rate(sender: Socket, receiver: Socket, to: number, seconds: number, window: number): Promise<number> {
  let got = 0;
  const onMessage = () => got++;
  receiver.on('message', onMessage);
  const payload = fakeTransport(1452);
  let sent = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  // Warm-up excluded: the count starts after 300 ms.
  let from = -1;
  let at = start;
  while (performance.now() < end) {
    while (sent - got < window) {
      sender.send(payload, to, '127.0.0.1');
      sent++;
    }
    await new Promise((r) => setImmediate(r));
    if (from < 0 && performance.now() - start > 300) {
      from = got;
      at = performance.now();
    }
    // A window lost to drops would stall the loop: after 20 ms without progress, what is in flight counts as lost.
    if (sent - got >= window) {
      const before = got;
      await new Promise((r) => setTimeout(r, 20));
      if (got === before) sent = got;
    }
  }
  receiver.off('message', onMessage);
  return ((got - from) / ((performance.now() - at) / 1000));
}

/** Round trips of a 100-byte datagram, ms: the receiver echoes to where it came from. */
async function rtts(sender: Socket, receiver: Socket, to: number, n: number): Promise<number[]> {
  const echo = (m: Buffer, r: { port: number; address: string }) => receiver.send(m, r.port, r.address);
  receiver.on('message', echo);
  const out: number[] = [];
  // What the throughput run left in flight must not answer a ping: each ping is numbered.
  await new Promise((r) => setTimeout(r, 300));
  for (let i = 0; i < n; i++) {
    const ping = fakeTransport(100);
    ping.writeUInt32LE(0xfeed0000 + i, 8);
    const t = performance.now();
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        sender.off('message', onReply);
        resolve();
      };
      const timer = setTimeout(done, 200);
      const onReply = (m: Buffer) => {
        if (m.length !== 100 || m.readUInt32LE(8) !== 0xfeed0000 + i) return;
        out.push(performance.now() - t);
        done();
      };
      sender.on('message', onReply);
      sender.send(ping, to, '127.0.0.1');
    });
  }
  receiver.off('message', echo);
  return out;
}

async function main(): Promise<void> {
  const runs = argNumber('runs', 5);
  const seconds = argNumber('seconds', 3);
  const window = argNumber('window', 128);
  const id = await generateTlsIdentity();
  const sender = await bound();
  const receiver = await bound();
  const relay = await child({ BENCH_ROLE: 'relay', BENCH_CERT: id.cert, BENCH_KEY: id.key, BENCH_RECEIVER: String(receiver.address().port) });
  const paths: Record<string, number> = { direct: receiver.address().port };
  const kids: ChildProcess[] = [relay.proc];
  try {
    for (const transport of ['tls', 'websocket'] as const) {
      const shim = await child({ BENCH_ROLE: 'shim', BENCH_RELAY: String(relay.port), BENCH_PIN: id.pin, BENCH_TRANSPORT: transport, BENCH_SENDER: String(sender.address().port) });
      kids.push(shim.proc);
      paths[transport] = shim.port;
    }
    // Each shim has a key of its own, so the relay keeps both streams (it keeps one per node).
    const rates: Record<string, number[]> = {};
    const lat: Record<string, number[]> = {};
    for (let r = 0; r < runs; r++) {
      for (const [name, port] of Object.entries(paths)) {
        const pps = await rate(sender, receiver, port, seconds, window);
        (rates[name] ??= []).push(Math.round(((pps * 1452 * 8) / 1e6) * 10) / 10);
        (lat[name] ??= []).push(...(await rtts(sender, receiver, port, 50)));
        progress(`run ${r + 1}/${runs} ${name}: ${rates[name][r]} Mbit/s`);
      }
    }
    const out = {
      bench: 'stream-throughput',
      unit: 'Mbit/s of 1452-byte datagrams, loopback, no WireGuard',
      window,
      seconds,
      throughput: Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, summary(v)])),
      shareOfDirect: Object.fromEntries(Object.keys(rates).filter((k) => k !== 'direct').map((k) => [k, Math.round((summary(rates[k]).median / summary(rates.direct).median) * 1000) / 1000])),
      rttMs: Object.fromEntries(Object.entries(lat).map(([k, v]) => [k, { median: Math.round(summary(v).median * 1000) / 1000, p95: Math.round(summary(v).p95 * 1000) / 1000, samples: v.length }])),
    };
    console.log(JSON.stringify(out, null, 2));
  } finally {
    kids.forEach((k) => k.kill());
    sender.close();
    receiver.close();
  }
}

const role = process.env.BENCH_ROLE;
(role === 'relay' ? relayRole() : role === 'shim' ? shimRole() : main()).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
