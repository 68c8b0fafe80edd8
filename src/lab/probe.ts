/**
 * The lab's NAT probe, run inside namespaces (`node probe.js MODE …`). Servers sit on the lab's
 * internet; clients sit behind a router and print one JSON object with what they observed.
 *
 *   server  --ports 3478,3479 [--ipv6] [--peer IP:PORT,…] [--tcp 80,443,8080]
 *   observe --port P --servers IP:PORT,…          mapping seen by each server
 *   filter  --port P --server IP:PORT             which unsolicited senders get through
 *   listen  --port P [--server IP:PORT | --family 6] --ms N [--stdin]
 *                                                 prints {"observed"} at once, then what arrived
 *                                                 (after N ms, or --stdin: once stdin closes)
 *   send    --port P --to IP:PORT --tag T [--count N] [--via SERVER]
 *   punch   --port P --to IP:PORT --ms MAX        both sides at once: does the other's datagram get in?
 *   tcp     --to IP:PORT                          can we open a TCP connection?
 *   pcp     --gateway IP --client IP --port P --external P --lifetime S
 *                                                 a PCP MAP request (RFC 6887) for UDP port P: what the router granted
 *
 * A client's socket has the family of the endpoints it is given (IPv6 written [addr]:port); a
 * server with --ipv6 listens on both families, and --peer names one peer server per family.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createServer, connect } from 'node:net';
import { IpAddress, type Family } from '../core/net/address.js';
import { Endpoint } from '../core/net/endpoint.js';
import { randomBytes } from 'node:crypto';
import { decodePcpMap, encodePcpMap, PCP_NONCE_LEN, PCP_SERVER_PORT } from '../core/portmap/pcp.js';
import { decodeProbe, encodeProbe, type ProbeMessage } from './probe-protocol.js';
import { scaled } from './time-scale.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// The windows below wait for something that may not come; they stretch with the lab's time scale
// (WGP2P_LAB_TIME_SCALE, 10 in a TCG guest, where a process runs 10-20x slower), as its deadlines do.
/** A datagram sent before the sender exited is in our socket's queue by then; this covers reading it on a loaded machine. */
const IN_FLIGHT_MS = scaled(250);
/** How long a punching side keeps sending after it heard the peer: ten datagrams, for a peer that started later. */
const LINGER_MS = scaled(500);
/** How long one echo waits for its reply before it is sent again (three times in all). */
const REPLY_MS = scaled(300);

function opt(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`probe: --${name} is required`);
  return v;
}

/** One family per socket (no IPv4-mapped addresses), so that what a probe measures is that family's path. */
function bind(port: number, family: Family): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = family === 4 ? createSocket('udp4') : createSocket({ type: 'udp6', ipv6Only: true });
    s.once('error', reject);
    s.bind(port, () => resolve(s));
  });
}

/** A datagram that cannot leave (no route in that family: an IPv6-only host, a router without IPv6) is a measurement, not a crash. */
function send(s: Socket, to: Endpoint, m: ProbeMessage): void {
  s.send(encodeProbe(m), to.port, to.address.toString(), () => undefined);
}

function familyOpt(): Family {
  const f = opt('family', '4');
  if (f !== '4' && f !== '6') throw new Error('probe: --family must be 4 or 6');
  return f === '4' ? 4 : 6;
}

/** An endpoint given on the command line; a bad one ends the probe with the reason. */
function endpointOpt(name: string, fallback?: string): Endpoint {
  return Endpoint.parse(opt(name, fallback));
}

/** Where a datagram came from (a dual-stack socket's IPv4-mapped source is the IPv4 address). */
const sourceOf = (rinfo: RemoteInfo) => Endpoint.of(IpAddress.parse(rinfo.address).unmapped(), rinfo.port);

function out(v: unknown): void {
  process.stdout.write(JSON.stringify(v) + '\n');
}

async function server(): Promise<void> {
  const ports = opt('ports').split(',').map(Number);
  const families: Family[] = process.argv.includes('--ipv6') ? [4, 6] : [4];
  const peers = process.argv.includes('--peer') ? opt('peer').split(',').map((x) => Endpoint.parse(x)) : [];
  const sockets = new Map<Family, Socket[]>();
  for (const f of families) sockets.set(f, await Promise.all(ports.map((p) => bind(p, f))));
  for (const f of families) {
    const [primary, secondary] = sockets.get(f)!;
    const peer = peers.find((p) => p.family === f);
    for (const s of sockets.get(f)!) {
      s.on('message', (buf: Buffer, rinfo: RemoteInfo) => {
        const m = decodeProbe(buf);
        if (!m) return;
        const observed = sourceOf(rinfo);
        if (m.op === 'echo') send(s, observed, { op: 'reply', id: m.id, tag: 'same', observed });
        if (m.op === 'filter') {
          send(s, observed, { op: 'reply', id: m.id, tag: 'same', observed });
          if (secondary) send(s === primary ? secondary : primary, observed, { op: 'reply', id: m.id, tag: 'other-port' });
          if (peer) send(primary, peer, { op: 'send-to', id: m.id, target: observed, tag: 'other-addr' });
        }
        const out = m.op === 'send-to' ? sockets.get(m.target.family)?.[0] : undefined;
        if (m.op === 'send-to' && out) send(out, m.target, { op: 'reply', id: m.id, tag: m.tag });
      });
    }
  }
  for (const p of opt('tcp', '').split(',').filter(Boolean)) {
    createServer((c) => {
      c.on('error', () => undefined);
      c.end('ok\n');
    }).listen(Number(p));
  }
}

/** Sends `m` up to 3 times until a reply with the same id arrives; collects replies for `collectMs` after the first. */
async function exchange(s: Socket, to: Endpoint, m: ProbeMessage, collectMs: number): Promise<{ tag: string; observed?: Endpoint; from: Endpoint }[]> {
  const got: { tag: string; observed?: Endpoint; from: Endpoint }[] = [];
  const onMsg = (buf: Buffer, rinfo: RemoteInfo) => {
    const r = decodeProbe(buf);
    if (r?.op === 'reply' && r.id === m.id && !got.some((g) => g.tag === r.tag)) got.push({ tag: r.tag, observed: r.observed, from: sourceOf(rinfo) });
  };
  s.on('message', onMsg);
  for (let i = 0; i < 3 && got.length === 0; i++) {
    send(s, to, m);
    // A deadline, not a count of 10 ms sleeps: at load average 19 those stretched a path that
    // answers nothing (udp-blocked, a family the host lacks) past the caller's 10 s.
    const deadline = performance.now() + REPLY_MS;
    while (got.length === 0 && performance.now() < deadline) await sleep(10);
  }
  if (got.length) await sleep(collectMs);
  s.off('message', onMsg);
  return got;
}

async function observe(): Promise<void> {
  const servers = opt('servers').split(',').map((x) => Endpoint.parse(x));
  const s = await bind(Number(opt('port')), servers[0].family);
  const observed: Record<string, Endpoint | null> = {};
  for (const srv of servers) {
    const r = await exchange(s, srv, { op: 'echo', id: `o-${srv}` }, 0);
    observed[srv.toString()] = r[0]?.observed ?? null;
  }
  out({ local: s.address().port, observed });
  s.close();
}

async function filter(): Promise<void> {
  const server = endpointOpt('server');
  const s = await bind(Number(opt('port')), server.family);
  // Wait long enough for the third party's datagram, which crosses two extra hops and a process.
  const r = await exchange(s, server, { op: 'filter', id: 'f' }, Number(opt('ms', String(scaled(700)))));
  out({ observed: r.find((x) => x.tag === 'same')?.observed ?? null, tags: r.map((x) => x.tag).sort() });
  s.close();
}

async function listen(): Promise<void> {
  const server = process.argv.includes('--server') ? endpointOpt('server') : undefined;
  const s = await bind(Number(opt('port')), server?.family ?? familyOpt());
  const received: { from: Endpoint; tag: string }[] = [];
  s.on('message', (buf: Buffer, rinfo: RemoteInfo) => {
    const m = decodeProbe(buf);
    if (m?.op === 'reply' && m.id !== 'l') received.push({ from: sourceOf(rinfo), tag: m.tag });
  });
  let observed: Endpoint | null = null;
  if (server) {
    const r = await exchange(s, server, { op: 'echo', id: 'l' }, 0);
    observed = r[0]?.observed ?? null;
  }
  out({ observed });
  if (process.argv.includes('--stdin')) {
    // Until the caller closes our stdin (its sender has exited), then a moment for datagrams still being read.
    await Promise.race([sleep(Number(opt('ms'))), new Promise((r) => process.stdin.once('close', r).once('end', r).resume())]);
    await sleep(IN_FLIGHT_MS);
  } else {
    await sleep(Number(opt('ms')));
  }
  out({ received });
  s.close();
  process.stdin.destroy();
}

async function sendMode(): Promise<void> {
  const count = Number(opt('count', '3'));
  // --via: ask that probe server to send from its own primary port (a port we cannot bind here).
  const via = process.argv.includes('--via') ? endpointOpt('via') : undefined;
  const to = endpointOpt('to');
  const s = await bind(Number(opt('port', '0')), (via ?? to).family);
  for (let i = 0; i < count; i++) {
    if (via) send(s, via, { op: 'send-to', id: 'u', target: to, tag: opt('tag') });
    else send(s, to, { op: 'reply', id: 'u', tag: opt('tag') });
    await sleep(50);
  }
  s.close();
}

/**
 * One side of a hole punch: send to the peer every 50 ms while listening for the peer's datagrams,
 * until LINGER_MS after the first of them arrived (so that the peer gets ours too), or --ms. Run on
 * both hosts at once; each firewall lets the other's datagrams in once its own host has sent to
 * that address and port. Sending until then makes the outcome independent of which process
 * started first: starting one took up to 1.3 s under load (measured), more than any fixed overlap.
 */
async function punch(): Promise<void> {
  const to = endpointOpt('to');
  const s = await bind(Number(opt('port')), to.family);
  const start = performance.now();
  let firstMs: number | null = null;
  let received = 0;
  s.on('message', (buf: Buffer, rinfo: RemoteInfo) => {
    const m = decodeProbe(buf);
    if (m?.op !== 'reply' || m.tag !== 'punch' || !sourceOf(rinfo).equals(to)) return;
    received++;
    firstMs ??= Math.round(performance.now() - start);
  });
  const ms = Number(opt('ms'));
  while (performance.now() - start < ms && (firstMs === null || performance.now() - start < firstMs + LINGER_MS)) {
    send(s, to, { op: 'reply', id: 'p', tag: 'punch' });
    await sleep(50);
  }
  out({ received, firstMs });
  s.close();
}

async function tcp(): Promise<void> {
  const to = endpointOpt('to');
  const ok = await new Promise<boolean>((resolve) => {
    let connected = false;
    const c = connect({ host: to.address.toString(), port: to.port, timeout: scaled(1000) }, () => {
      connected = true;
      c.destroy();
      resolve(true);
    });
    // After a process stall longer than the timeout, timers run before I/O in the next loop turn:
    // the timeout would win over a connection the kernel had long completed (a cone row read "tcp:
    // none" at load average 9). setImmediate lets that I/O be read first.
    c.on('timeout', () => setImmediate(() => (c.destroy(), resolve(connected))));
    c.on('error', () => resolve(false));
  });
  out({ ok });
}

/**
 * One PCP MAP request to the router, with the project's own codec (core/portmap/pcp.ts), so that
 * `lab verify` checks the codec against miniupnpd as well as the router. Sent from the client
 * address named in the request (the server refuses any other: ADDRESS_MISMATCH); resent at
 * 250 ms doubling, as the agent does (agent/port-mapping/udp-exchange.ts). Prints the grant, or
 * what was wrong with the answer.
 */
async function pcp(): Promise<void> {
  const gateway = IpAddress.parse(opt('gateway'));
  const client = IpAddress.parse(opt('client'));
  const internalPort = Number(opt('port'));
  const nonce = new Uint8Array(randomBytes(PCP_NONCE_LEN));
  const request = encodePcpMap({ client, nonce, internalPort, suggestedPort: Number(opt('external')), lifetimeS: Number(opt('lifetime')) });
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind({ address: client.toString(), port: 0 }, r));
  let problem = 'no answer';
  const result = await new Promise<Record<string, unknown>>((resolve) => {
    s.on('message', (buf: Buffer, rinfo: RemoteInfo) => {
      if (rinfo.address !== gateway.toString() || rinfo.port !== PCP_SERVER_PORT) return;
      const d = decodePcpMap(new Uint8Array(buf.buffer, buf.byteOffset, buf.length), { nonce, internalPort });
      if (d.ok) resolve({ ok: true, external: Endpoint.of(d.value.externalAddress, d.value.externalPort).toString(), lifetimeS: d.value.lifetimeS, epochS: d.value.epochS });
      else problem = d.problem;
    });
    // RFC 6887's retransmission doubling from 250 ms, stretched like the lab's other windows: a
    // router under TCG answers in seconds.
    let wait = scaled(250);
    const sendOnce = () => {
      if (wait > scaled(2000)) return resolve({ ok: false, problem });
      s.send(request, PCP_SERVER_PORT, gateway.toString(), () => undefined);
      setTimeout(sendOnce, wait);
      wait *= 2;
    };
    sendOnce();
  });
  out(result);
  s.close();
  process.exit(0);
}

const modes: Record<string, () => Promise<void>> = { server, observe, filter, listen, send: sendMode, punch, tcp, pcp };
const mode = modes[process.argv[2] ?? ''];
if (!mode) {
  console.error(`probe: mode must be one of ${Object.keys(modes).join(', ')}`);
  process.exit(2);
}
mode().catch((err: unknown) => {
  console.error(`probe: ${(err as Error).message}`);
  process.exit(1);
});
