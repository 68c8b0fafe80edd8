/**
 * What a periodic probe from an agent toward the hub costs, for the two ways of making one:
 *
 *  - keepalive: the agent's hub peer with a short WireGuard persistent keepalive. One 32-byte
 *    transport message, sent only when nothing else crossed the peer for K s; not answered.
 *  - ws-ping: a WebSocket ping over the control connection inside the tunnel (the `ws` library
 *    the hub uses answers it with a pong); TCP acknowledges both.
 *
 * Per agent: packets and bytes per probe on the agent's own link (IP headers included), counted
 * by the kernel over `--seconds` of probes once a second. At the hub: CPU per probe, measured by
 * driving probes as fast as one agent can make them for `--seconds` and reading the CPU time of
 * the hub's processes from /proc (wireguard-go for both; for ws-ping also the Node process that
 * serves the WebSocket), minus the same processes' idle CPU over as long. Keepalives are driven
 * by setting the interval 0 -> 1 over UAPI, which sends one at once (README, "What makes
 * WireGuard send now"); they are genuine keepalives, counted at the hub by its peer's rx bytes.
 * One peer at a high rate stands for many peers at 1/s: the per-packet work is the same, the
 * index lookup aside.
 *
 *   node dist/bench/hub-probe.js [--seconds 10]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';
import { nsArgv, run } from '../src/core/exec.js';
import { IpAddress } from '../src/core/net/address.js';
import { Endpoint } from '../src/core/net/endpoint.js';
import { generateKeyPair, keyToHex } from '../src/core/wireguard/keys.js';
import { getDevice, setDevice, uapiSocketPath } from '../src/core/wireguard/uapi.js';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { hubAndDevice } from '../src/lab/topologies.js';
import { parseTopology } from '../src/lab/topology.js';
import { argNumber, argString, progress } from './stats.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HUB_TUNNEL = '10.77.0.1';
const WS_PORT = 8089;

// ---- roles this file plays inside the lab's namespaces ------------------------------------------

if (argString('role', '') === 'server') {
  // A bare WebSocket server: `ws` answers pings with pongs by itself, as in the hub.
  new WebSocketServer({ host: HUB_TUNNEL, port: WS_PORT });
  setInterval(() => undefined, 1 << 30);
} else if (argString('role', '') === 'client') {
  const intervalMs = argNumber('interval-ms', 1000);
  const seconds = argNumber('seconds', 10);
  const ws = new WebSocket(`ws://${HUB_TUNNEL}:${WS_PORT}`);
  ws.on('open', () => {
    let sent = 0;
    let pongs = 0;
    ws.on('pong', () => pongs++);
    const end = Date.now() + seconds * 1000;
    const tick = () => {
      if (Date.now() >= end) {
        process.stdout.write(JSON.stringify({ sent, pongs }) + '\n');
        ws.close();
        setTimeout(() => process.exit(0), 200);
        return;
      }
      // Interval 0: as fast as pongs come back, one ping in flight (like a fleet, not a flood).
      ws.ping();
      sent++;
      if (intervalMs > 0) setTimeout(tick, intervalMs);
    };
    if (intervalMs === 0) ws.on('pong', tick);
    tick();
  });
} else {
  await main();
}

// ---- the measurement ------------------------------------------------------------------------------

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // Fields 14 and 15 of stat (utime, stime), counted after the command name.
  return Number(f[11]) + Number(f[12]);
}

async function pidsIn(netns: string, comm: string): Promise<number[]> {
  const pids = (await run('ip', ['netns', 'pids', netns])).stdout.split(/\s+/).filter(Boolean).map(Number);
  return pids.filter((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === comm;
    } catch {
      return false;
    }
  });
}

async function linkCounters(lab: Lab, host: string): Promise<{ packets: number; bytes: number }> {
  const j = JSON.parse((await lab.exec(host, 'ip', ['-s', '-j', 'link', 'show', 'eth0'])).stdout) as { stats64: { rx: { packets: number; bytes: number }; tx: { packets: number; bytes: number } } }[];
  const s = j[0].stats64;
  return { packets: s.rx.packets + s.tx.packets, bytes: s.rx.bytes + s.tx.bytes };
}

/** One UAPI connection, reused: each request sets the interval 0 then 1, which sends one keepalive. */
function keepaliveDriver(ifname: string, hubKeyHex: string): { once(): Promise<void>; close(): void } {
  const sock = createConnection(uapiSocketPath(ifname));
  const req = `set=1\npublic_key=${hubKeyHex}\npersistent_keepalive_interval=0\npublic_key=${hubKeyHex}\npersistent_keepalive_interval=1\n\n`;
  let waiting: (() => void) | undefined;
  let buf = '';
  sock.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    if (buf.includes('\n\n')) {
      buf = '';
      waiting?.();
    }
  });
  return {
    once: () =>
      new Promise<void>((r) => {
        waiting = r;
        sock.write(req);
      }),
    close: () => sock.destroy(),
  };
}

async function main(): Promise<void> {
  teardownOnExit();
  const seconds = argNumber('seconds', 10);
  const self = fileURLToPath(import.meta.url);
  const lab = await Lab.up(parseTopology(hubAndDevice(`bprobe${process.pid % 1000}`)));
  try {
    const hubKeys = generateKeyPair();
    const devKeys = generateKeyPair();
    const hubIf = `bph${process.pid % 100000}`;
    const devIf = `bpd${process.pid % 100000}`;
    await lab.startWireGuard('hub', hubIf, { privateKey: hubKeys.privateKey, listenPort: 51820, address: `${HUB_TUNNEL}/24` });
    await lab.startWireGuard('device', devIf, { privateKey: devKeys.privateKey, address: '10.77.0.2/24' });
    await setDevice(hubIf, { peers: [{ publicKey: devKeys.publicKey, allowedIps: ['10.77.0.2/32'] }] });
    await setDevice(devIf, { peers: [{ publicKey: hubKeys.publicKey, endpoint: Endpoint.of(IpAddress.parse(lab.address('hub')), 51820), allowedIps: [`${HUB_TUNNEL}/32`], persistentKeepalive: 0 }] });
    await lab.exec('device', 'ping', ['-c', '1', '-w', '5', HUB_TUNNEL]);
    const [hubWg] = await pidsIn(lab.ns('hub'), 'wireguard-go');
    const hz = Number((await run('getconf', ['CLK_TCK'])).stdout.trim());
    const cpuMs = (pids: number[]) => (pids.reduce((s, p) => s + cpuTicks(p), 0) * 1000) / hz;
    const hubRx = async () => (await getDevice(hubIf)).peers.find((p) => p.publicKey === devKeys.publicKey)!.rxBytes;

    const idle = async (pids: number[]) => {
      const c0 = cpuMs(pids);
      await sleep(seconds * 1000);
      return cpuMs(pids) - c0;
    };

    // 1. Keepalive, per agent: on the wire at K = 1 s.
    await setDevice(devIf, { peers: [{ publicKey: hubKeys.publicKey, persistentKeepalive: 1 }] });
    await sleep(1500);
    let w0 = await linkCounters(lab, 'device');
    await sleep(seconds * 1000);
    let w1 = await linkCounters(lab, 'device');
    const kaWire = { packetsPerSecond: (w1.packets - w0.packets) / seconds, bytesPerSecond: (w1.bytes - w0.bytes) / seconds };
    progress(`keepalive 1 s: ${kaWire.packetsPerSecond} packets/s, ${kaWire.bytesPerSecond} bytes/s on the agent's link`);
    await setDevice(devIf, { peers: [{ publicKey: hubKeys.publicKey, persistentKeepalive: 0 }] });

    // 2. Keepalive, at the hub: CPU per keepalive.
    await sleep(1000);
    const kaIdle = await idle([hubWg]);
    const driver = keepaliveDriver(devIf, keyToHex(hubKeys.publicKey));
    const rx0 = await hubRx();
    const c0 = cpuMs([hubWg]);
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) await driver.once();
    await sleep(200);
    const kaCpu = cpuMs([hubWg]) - c0 - kaIdle;
    const keepalives = ((await hubRx()) - rx0) / 32;
    driver.close();
    await setDevice(devIf, { peers: [{ publicKey: hubKeys.publicKey, persistentKeepalive: 0 }] });
    const kaPerProbeUs = (kaCpu * 1000) / keepalives;
    progress(`keepalive at the hub: ${keepalives} keepalives in ${seconds} s, ${kaCpu.toFixed(0)} ms of wireguard-go CPU above idle: ${kaPerProbeUs.toFixed(1)} µs each`);

    // 3. WebSocket ping, per agent: on the wire at one a second.
    lab.spawn('hub', 'ws-server', process.execPath, [self, '--role', 'server']);
    await sleep(1000);
    const [hubNode] = await pidsIn(lab.ns('hub'), 'node');
    w0 = await linkCounters(lab, 'device');
    const client = (intervalMs: number) => run(process.execPath, [self, '--role', 'client', '--interval-ms', String(intervalMs), '--seconds', String(seconds)], { netns: lab.ns('device'), timeoutMs: (seconds + 20) * 1000 });
    const slow = JSON.parse((await client(1000)).stdout) as { sent: number; pongs: number };
    w1 = await linkCounters(lab, 'device');
    // The connection's own setup and close are a few packets of the total; they count against it.
    const wsWire = { packetsPerSecond: (w1.packets - w0.packets) / seconds, bytesPerSecond: (w1.bytes - w0.bytes) / seconds, pings: slow.sent, pongs: slow.pongs };
    progress(`ws ping 1 s: ${wsWire.packetsPerSecond} packets/s, ${wsWire.bytesPerSecond} bytes/s on the agent's link (connection setup included)`);

    // 4. WebSocket ping, at the hub: CPU per ping (wireguard-go and the Node server).
    const wsIdle = await idle([hubWg, hubNode]);
    const c1 = cpuMs([hubWg, hubNode]);
    const fast = JSON.parse((await client(0)).stdout) as { sent: number; pongs: number };
    const wsCpu = cpuMs([hubWg, hubNode]) - c1 - wsIdle;
    const wsPerProbeUs = (wsCpu * 1000) / fast.pongs;
    progress(`ws ping at the hub: ${fast.pongs} pongs in ${seconds} s, ${wsCpu.toFixed(0)} ms of CPU above idle: ${wsPerProbeUs.toFixed(1)} µs each`);

    // 1,000 probes a second of `us` µs each is us / 1000 of a core; 1,000 agents' bytes, in kbit/s.
    const perThousand = (us: number, wire: { bytesPerSecond: number }) => ({ cpuPercentOfOneCore: Math.round(us * 10) / 100, kbitPerSecond: Math.round(wire.bytesPerSecond * 8) });
    console.log(
      JSON.stringify(
        {
          benchmark: 'hub-probe',
          note: 'one probe a second per agent; per agent on its link, and at a hub with 1,000 agents (CPU from one agent driven fast, see the header)',
          keepalive: { perAgent: kaWire, hubCpuPerProbeUs: Math.round(kaPerProbeUs * 10) / 10, probesMeasured: keepalives, per1000Agents: perThousand(kaPerProbeUs, kaWire) },
          wsPing: { perAgent: wsWire, hubCpuPerProbeUs: Math.round(wsPerProbeUs * 10) / 10, probesMeasured: fast.pongs, per1000Agents: perThousand(wsPerProbeUs, wsWire) },
        },
        null,
        2,
      ),
    );
  } finally {
    await lab.down();
  }
}
