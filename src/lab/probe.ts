/**
 * The lab's NAT probe, run inside namespaces (`node probe.js MODE …`). Servers sit on the lab's
 * internet; clients sit behind a router and print one JSON object with what they observed.
 *
 *   server  --ports 3478,3479 [--peer IP:PORT] [--tcp 80,443,8080]
 *   observe --port P --servers IP:PORT,…          mapping seen by each server
 *   filter  --port P --server IP:PORT             which unsolicited senders get through
 *   listen  --port P [--server IP:PORT] --ms N    prints {"observed"} at once, then what arrived
 *   send    --port P --to IP:PORT --tag T [--count N] [--via SERVER]
 *   tcp     --to IP:PORT                          can we open a TCP connection?
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createServer, connect } from 'node:net';
import { IpAddress } from '../core/net/address.js';
import { Endpoint } from '../core/net/endpoint.js';
import { decodeProbe, encodeProbe, type ProbeMessage } from './probe-protocol.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function opt(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`probe: --${name} is required`);
  return v;
}

/** The lab's networks are IPv4; an IPv6 lab would pick the socket family from the servers' endpoints. */
function bind(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(port, () => resolve(s));
  });
}

function send(s: Socket, to: Endpoint, m: ProbeMessage): void {
  s.send(encodeProbe(m), to.port, to.address.toString());
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
  const peer = process.argv.includes('--peer') ? endpointOpt('peer') : undefined;
  const sockets = await Promise.all(ports.map(bind));
  const [primary, secondary] = sockets;
  for (const s of sockets) {
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
      if (m.op === 'send-to') send(primary, m.target, { op: 'reply', id: m.id, tag: m.tag });
    });
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
    for (let w = 0; w < 30 && got.length === 0; w++) await sleep(10);
  }
  if (got.length) await sleep(collectMs);
  s.off('message', onMsg);
  return got;
}

async function observe(): Promise<void> {
  const s = await bind(Number(opt('port')));
  const observed: Record<string, Endpoint | null> = {};
  for (const srv of opt('servers').split(',').map((x) => Endpoint.parse(x))) {
    const r = await exchange(s, srv, { op: 'echo', id: `o-${srv}` }, 0);
    observed[srv.toString()] = r[0]?.observed ?? null;
  }
  out({ local: s.address().port, observed });
  s.close();
}

async function filter(): Promise<void> {
  const s = await bind(Number(opt('port')));
  // Wait long enough for the third party's datagram, which crosses two extra hops and a process.
  const r = await exchange(s, endpointOpt('server'), { op: 'filter', id: 'f' }, Number(opt('ms', '700')));
  out({ observed: r.find((x) => x.tag === 'same')?.observed ?? null, tags: r.map((x) => x.tag).sort() });
  s.close();
}

async function listen(): Promise<void> {
  const s = await bind(Number(opt('port')));
  const received: { from: Endpoint; tag: string }[] = [];
  s.on('message', (buf: Buffer, rinfo: RemoteInfo) => {
    const m = decodeProbe(buf);
    if (m?.op === 'reply' && m.id !== 'l') received.push({ from: sourceOf(rinfo), tag: m.tag });
  });
  let observed: Endpoint | null = null;
  if (process.argv.includes('--server')) {
    const r = await exchange(s, endpointOpt('server'), { op: 'echo', id: 'l' }, 0);
    observed = r[0]?.observed ?? null;
  }
  out({ observed });
  await sleep(Number(opt('ms')));
  out({ received });
  s.close();
}

async function sendMode(): Promise<void> {
  const s = await bind(Number(opt('port', '0')));
  const count = Number(opt('count', '3'));
  // --via: ask that probe server to send from its own primary port (a port we cannot bind here).
  const via = process.argv.includes('--via') ? endpointOpt('via') : undefined;
  const to = endpointOpt('to');
  for (let i = 0; i < count; i++) {
    if (via) send(s, via, { op: 'send-to', id: 'u', target: to, tag: opt('tag') });
    else send(s, to, { op: 'reply', id: 'u', tag: opt('tag') });
    await sleep(50);
  }
  s.close();
}

async function tcp(): Promise<void> {
  const to = endpointOpt('to');
  const ok = await new Promise<boolean>((resolve) => {
    const c = connect({ host: to.address.toString(), port: to.port, timeout: 1000 }, () => {
      c.destroy();
      resolve(true);
    });
    c.on('timeout', () => (c.destroy(), resolve(false)));
    c.on('error', () => resolve(false));
  });
  out({ ok });
}

const modes: Record<string, () => Promise<void>> = { server, observe, filter, listen, send: sendMode, tcp };
const mode = modes[process.argv[2] ?? ''];
if (!mode) {
  console.error(`probe: mode must be one of ${Object.keys(modes).join(', ')}`);
  process.exit(2);
}
mode().catch((err: unknown) => {
  console.error(`probe: ${(err as Error).message}`);
  process.exit(1);
});
