/**
 * WireGuard (wireguard-go, unmodified) over the stream transport against WireGuard direct, in two
 * network namespaces of its own (root): iperf3 TCP throughput and ping round trips through the
 * tunnel, the two paths alternated in one run so the machine's load falls on both alike.
 *
 *   hub side   stream-bh: WireGuard on UDP 51820, the relay's stream side on TCP 8443 (TLS or
 *              WebSocket), its hub channel pointed at 127.0.0.1:51820
 *   node side  stream-bc: WireGuard whose hub peer points either at 10.250.9.1:51820 (direct) or at
 *              the shim's local port (stream); for the stream runs nftables drops the node's UDP
 *              on its link, as a UDP-blocking network does
 *
 *   node dist/bench/stream-wireguard.js [--runs 3] [--seconds 4] [--transport tls|websocket]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { StreamShim } from '../src/agent/stream-shim.js';
import { run } from '../src/core/exec.js';
import { IpAddress } from '../src/core/net/address.js';
import { Endpoint, HostPort } from '../src/core/net/endpoint.js';
import type { StreamTransport } from '../src/core/stream/connect.js';
import { generateTlsIdentity } from '../src/core/stream/tls-identity.js';
import { generateKeyPair } from '../src/core/wireguard/keys.js';
import { StreamServer } from '../src/relay/stream-server.js';
import { argNumber, argString, progress, summary } from './stats.js';

const SELF = fileURLToPath(import.meta.url);
const NS_H = 'stream-bh';
const NS_C = 'stream-bc';
const WG_H = 'strbwh';
const WG_C = 'strbwc';
const TOKEN = 'c'.repeat(43);
const log = pino({ level: 'warn' });

const ns = (n: string, cmd: string, ...args: string[]) => run('ip', ['netns', 'exec', n, cmd, ...args]);

async function relayRole(dir: string): Promise<void> {
  const server = new StreamServer({
    tls: { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) },
    authenticate: (_k, t) => t === TOKEN,
    streamSide: () => ({ kind: 'unknown' }),
    hub: { endpoint: Endpoint.of(IpAddress.parse('127.0.0.1'), 51820), source: IpAddress.parse('127.0.0.1') },
    limits: { maxQueued: 4 << 20 },
    log,
  });
  await server.listen('10.250.9.1', 8443);
  process.stdout.write('ready\n');
}

async function shimRole(dir: string, transport: StreamTransport): Promise<void> {
  const shim = new StreamShim({
    relay: HostPort.parse('10.250.9.1:8443'),
    trust: { pin: readFileSync(join(dir, 'pin'), 'utf8') },
    transport,
    proxy: null,
    credentials: { publicKey: generateKeyPair().publicKey, token: TOKEN },
    wireguard: Endpoint.of(IpAddress.parse('127.0.0.1'), 51821),
    maxQueued: 4 << 20,
    log,
  });
  const local = await shim.open({ kind: 'hub' });
  shim.start();
  for (let i = 0; i < 500 && shim.state.kind !== 'up'; i++) await new Promise((r) => setTimeout(r, 10));
  if (shim.state.kind !== 'up') throw new Error(`the shim is not up: ${JSON.stringify(shim.state)}`);
  process.stdout.write(`port ${local.port}\n`);
}

function background(netns: string, args: string[]): Promise<{ proc: ChildProcess; line: string }> {
  const proc = spawn('ip', ['netns', 'exec', netns, process.execPath, SELF, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    proc.stdout!.setEncoding('utf8').once('data', (d: string) => resolve({ proc, line: d.trim() }));
    proc.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}`)));
  });
}

async function teardown(): Promise<void> {
  for (const [n, i] of [[NS_H, WG_H], [NS_C, WG_C]]) await run('ip', ['netns', 'exec', n, 'ip', 'link', 'del', i], { allowFail: true });
  for (const n of [NS_H, NS_C]) await run('ip', ['netns', 'del', n], { allowFail: true });
}

async function setup(dir: string): Promise<{ hubKey: string }> {
  const h = generateKeyPair();
  const c = generateKeyPair();
  writeFileSync(join(dir, 'h.key'), h.privateKey, { mode: 0o600 });
  writeFileSync(join(dir, 'c.key'), c.privateKey, { mode: 0o600 });
  await run('ip', ['netns', 'add', NS_H]);
  await run('ip', ['netns', 'add', NS_C]);
  await run('ip', ['link', 'add', 'stream-bvh', 'netns', NS_H, 'type', 'veth', 'peer', 'name', 'stream-bvc', 'netns', NS_C]);
  await ns(NS_H, 'ip', 'addr', 'add', '10.250.9.1/24', 'dev', 'stream-bvh');
  await ns(NS_C, 'ip', 'addr', 'add', '10.250.9.2/24', 'dev', 'stream-bvc');
  for (const [n, l] of [[NS_H, 'stream-bvh'], [NS_C, 'stream-bvc']]) {
    await ns(n, 'ip', 'link', 'set', 'lo', 'up');
    await ns(n, 'ip', 'link', 'set', l, 'up');
  }
  await ns(NS_H, 'wireguard-go', WG_H);
  await ns(NS_C, 'wireguard-go', WG_C);
  await ns(NS_H, 'wg', 'set', WG_H, 'private-key', join(dir, 'h.key'), 'listen-port', '51820', 'peer', c.publicKey, 'allowed-ips', '10.251.9.2/32');
  await ns(NS_C, 'wg', 'set', WG_C, 'private-key', join(dir, 'c.key'), 'listen-port', '51821', 'peer', h.publicKey, 'allowed-ips', '10.251.9.1/32', 'endpoint', '10.250.9.1:51820');
  await ns(NS_H, 'ip', 'addr', 'add', '10.251.9.1/24', 'dev', WG_H);
  await ns(NS_C, 'ip', 'addr', 'add', '10.251.9.2/24', 'dev', WG_C);
  await ns(NS_H, 'ip', 'link', 'set', WG_H, 'up', 'mtu', '1420');
  await ns(NS_C, 'ip', 'link', 'set', WG_C, 'up', 'mtu', '1420');
  await ns(NS_C, 'nft', 'add', 'table', 'inet', 'streamblock');
  await ns(NS_C, 'nft', 'add', 'chain', 'inet', 'streamblock', 'out', '{ type filter hook output priority 0; }');
  return { hubKey: h.publicKey };
}

async function iperf(seconds: number): Promise<number> {
  const r = await ns(NS_C, 'iperf3', '-c', '10.251.9.1', '-t', String(seconds), '-J');
  return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e6;
}

async function pings(): Promise<number[]> {
  // After an endpoint change the first reply waits for a handshake: not part of the round trip.
  for (let i = 0; i < 10; i++) if ((await run('ip', ['netns', 'exec', NS_C, 'ping', '-c', '1', '-W', '1', '10.251.9.1'], { allowFail: true })).code === 0) break;
  const r = await ns(NS_C, 'ping', '-c', '20', '-i', '0.05', '-W', '1', '10.251.9.1');
  return [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

async function main(): Promise<void> {
  const runs = argNumber('runs', 3);
  const seconds = argNumber('seconds', 4);
  const transport = argString('transport', 'tls') as StreamTransport;
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-stream-bench-'));
  const kids: ChildProcess[] = [];
  const stop = () => void teardown().finally(() => process.exit(130));
  process.once('SIGINT', stop);
  try {
    const id = await generateTlsIdentity();
    writeFileSync(join(dir, 'cert.pem'), id.cert);
    writeFileSync(join(dir, 'key.pem'), id.key, { mode: 0o600 });
    writeFileSync(join(dir, 'pin'), id.pin);
    const { hubKey } = await setup(dir);
    const iperfd = spawn('ip', ['netns', 'exec', NS_H, 'iperf3', '-s', '-B', '10.251.9.1'], { stdio: 'ignore' });
    kids.push(iperfd);
    const relay = await background(NS_H, ['relay', dir]);
    kids.push(relay.proc);
    const shim = await background(NS_C, ['shim', dir, transport]);
    kids.push(shim.proc);
    const shimPort = Number(shim.line.split(' ')[1]);
    const mbit: Record<string, number[]> = { stream: [], direct: [] };
    const rtt: Record<string, number[]> = { stream: [], direct: [] };
    for (let i = 0; i < runs; i++) {
      await ns(NS_C, 'nft', 'add', 'rule', 'inet', 'streamblock', 'out', 'oifname', 'stream-bvc', 'meta', 'l4proto', 'udp', 'drop');
      await ns(NS_C, 'wg', 'set', WG_C, 'peer', hubKey, 'endpoint', `127.0.0.1:${shimPort}`);
      rtt.stream.push(...(await pings()));
      mbit.stream.push(await iperf(seconds));
      await ns(NS_C, 'nft', 'flush', 'chain', 'inet', 'streamblock', 'out');
      await ns(NS_C, 'wg', 'set', WG_C, 'peer', hubKey, 'endpoint', '10.250.9.1:51820');
      rtt.direct.push(...(await pings()));
      mbit.direct.push(await iperf(seconds));
      progress(`run ${i + 1}/${runs}: stream ${mbit.stream[i].toFixed(1)} Mbit/s, direct ${mbit.direct[i].toFixed(1)} Mbit/s`);
    }
    const round = (x: number) => Math.round(x * 10) / 10;
    const s = summary(mbit.stream.map(round));
    const d = summary(mbit.direct.map(round));
    console.log(JSON.stringify({ bench: 'stream-wireguard', transport, unit: 'Mbit/s iperf3 TCP through wireguard-go', stream: s, direct: d, shareOfDirect: Math.round((s.median / d.median) * 1000) / 1000, rttMs: { stream: summary(rtt.stream), direct: summary(rtt.direct) } }, (k, v: unknown) => (k === 'runs' && Array.isArray(v) && v.length > 10 ? undefined : v), 2));
  } finally {
    kids.forEach((k) => k.kill());
    await teardown();
    rmSync(dir, { recursive: true, force: true });
  }
}

const [role, dir, transport] = process.argv.slice(2);
(role === 'relay' ? relayRole(dir) : role === 'shim' ? shimRole(dir, transport as StreamTransport) : main()).catch(async (err: unknown) => {
  console.error(err);
  if (!role) await teardown();
  process.exit(1);
});
