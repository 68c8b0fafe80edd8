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
 *   serve                                         any of the client modes, many at once, as requests on stdin (see serve())
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
import { windowed } from './time-scale.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// The windows below wait for something that may not come; they stretch with the lab's window
// scale (time-scale.ts: how much slower a running process is, e.g. in a TCG guest).
/** A datagram sent before the sender exited is in our socket's queue by then; this covers reading it on a loaded machine. */
const IN_FLIGHT_MS = windowed(250);
/** How long a punching side keeps sending after it heard the peer: ten datagrams, for a peer that started later. */
const LINGER_MS = windowed(500);
/** How long one echo waits for its reply before it is sent again (three times in all). */
const REPLY_MS = windowed(300);

/**
 * One run of a mode: its arguments (what follows the mode on a command line), where its JSON
 * lines go, and, for a listener, when its sender is done (stdin closing, or a `stop` request in
 * serve mode).
 */
interface Run {
  args: readonly string[];
  out: (v: unknown) => void;
  stopped: Promise<void>;
}

function opt(r: Run, name: string, fallback?: string): string {
  const i = r.args.indexOf(`--${name}`);
  const v = i >= 0 ? r.args[i + 1] : fallback;
  if (v === undefined) throw new Error(`probe: --${name} is required`);
  return v;
}

const has = (r: Run, name: string) => r.args.includes(`--${name}`);

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

function familyOpt(r: Run): Family {
  const f = opt(r, 'family', '4');
  if (f !== '4' && f !== '6') throw new Error('probe: --family must be 4 or 6');
  return f === '4' ? 4 : 6;
}

/** An endpoint given on the command line; a bad one ends the probe with the reason. */
function endpointOpt(r: Run, name: string, fallback?: string): Endpoint {
  return Endpoint.parse(opt(r, name, fallback));
}

/** Where a datagram came from (a dual-stack socket's IPv4-mapped source is the IPv4 address). */
const sourceOf = (rinfo: RemoteInfo) => Endpoint.of(IpAddress.parse(rinfo.address).unmapped(), rinfo.port);

async function server(run: Run): Promise<void> {
  const ports = opt(run, 'ports').split(',').map(Number);
  const families: Family[] = has(run, 'ipv6') ? [4, 6] : [4];
  const peers = has(run, 'peer') ? opt(run, 'peer').split(',').map((x) => Endpoint.parse(x)) : [];
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
  for (const p of opt(run, 'tcp', '').split(',').filter(Boolean)) {
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

async function observe(run: Run): Promise<void> {
  const servers = opt(run, 'servers').split(',').map((x) => Endpoint.parse(x));
  const s = await bind(Number(opt(run, 'port')), servers[0].family);
  const observed: Record<string, Endpoint | null> = {};
  // All servers at once (the first datagrams still leave in the servers' order): where nothing
  // answers (UDP blocked, a family the host lacks) the row waits out one exchange, not one per server.
  const replies = await Promise.all(servers.map((srv) => exchange(s, srv, { op: 'echo', id: `o-${srv}` }, 0)));
  servers.forEach((srv, i) => (observed[srv.toString()] = replies[i][0]?.observed ?? null));
  run.out({ local: s.address().port, observed });
  s.close();
}

async function filter(run: Run): Promise<void> {
  const server = endpointOpt(run, 'server');
  const s = await bind(Number(opt(run, 'port')), server.family);
  // Wait long enough for the third party's datagram, which crosses two extra hops and a process.
  const r = await exchange(s, server, { op: 'filter', id: 'f' }, Number(opt(run, 'ms', String(windowed(700)))));
  run.out({ observed: r.find((x) => x.tag === 'same')?.observed ?? null, tags: r.map((x) => x.tag).sort() });
  s.close();
}

async function listen(run: Run): Promise<void> {
  const server = has(run, 'server') ? endpointOpt(run, 'server') : undefined;
  const s = await bind(Number(opt(run, 'port')), server?.family ?? familyOpt(run));
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
  run.out({ observed });
  if (has(run, 'stdin')) {
    // Until the caller says its sender has exited, then a moment for datagrams still being read.
    await Promise.race([sleep(Number(opt(run, 'ms'))), run.stopped]);
    await sleep(IN_FLIGHT_MS);
  } else {
    await sleep(Number(opt(run, 'ms')));
  }
  run.out({ received });
  s.close();
}

async function sendMode(run: Run): Promise<void> {
  const count = Number(opt(run, 'count', '3'));
  // --via: ask that probe server to send from its own primary port (a port we cannot bind here).
  const via = has(run, 'via') ? endpointOpt(run, 'via') : undefined;
  const to = endpointOpt(run, 'to');
  const s = await bind(Number(opt(run, 'port', '0')), (via ?? to).family);
  for (let i = 0; i < count; i++) {
    if (via) send(s, via, { op: 'send-to', id: 'u', target: to, tag: opt(run, 'tag') });
    else send(s, to, { op: 'reply', id: 'u', tag: opt(run, 'tag') });
    await sleep(50);
  }
  // Sent: the caller's listener may stop once this answers (in serve mode nothing else says so).
  run.out({ sent: count });
  s.close();
}

/**
 * One side of a hole punch: send to the peer every 50 ms while listening for the peer's datagrams,
 * until LINGER_MS after the first of them arrived (so that the peer gets ours too), or --ms. Run on
 * both hosts at once; each firewall lets the other's datagrams in once its own host has sent to
 * that address and port. Sending until then makes the outcome independent of which process
 * started first: starting one took up to 1.3 s under load (measured), more than any fixed overlap.
 */
async function punch(run: Run): Promise<void> {
  const to = endpointOpt(run, 'to');
  const s = await bind(Number(opt(run, 'port')), to.family);
  const start = performance.now();
  let firstMs: number | null = null;
  let received = 0;
  s.on('message', (buf: Buffer, rinfo: RemoteInfo) => {
    const m = decodeProbe(buf);
    if (m?.op !== 'reply' || m.tag !== 'punch' || !sourceOf(rinfo).equals(to)) return;
    received++;
    firstMs ??= Math.round(performance.now() - start);
  });
  const ms = Number(opt(run, 'ms'));
  while (performance.now() - start < ms && (firstMs === null || performance.now() - start < firstMs + LINGER_MS)) {
    send(s, to, { op: 'reply', id: 'p', tag: 'punch' });
    await sleep(50);
  }
  run.out({ received, firstMs });
  s.close();
}

async function tcp(run: Run): Promise<void> {
  const to = endpointOpt(run, 'to');
  const ok = await new Promise<boolean>((resolve) => {
    let connected = false;
    const c = connect({ host: to.address.toString(), port: to.port, timeout: windowed(1000) }, () => {
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
  run.out({ ok });
}

/**
 * One PCP MAP request to the router, with the project's own codec (core/portmap/pcp.ts), so that
 * `lab verify` checks the codec against miniupnpd as well as the router. Sent from the client
 * address named in the request (the server refuses any other: ADDRESS_MISMATCH); resent at
 * 250 ms doubling, as the agent does (agent/port-mapping/udp-exchange.ts). Prints the grant, or
 * what was wrong with the answer.
 */
async function pcp(run: Run): Promise<void> {
  const gateway = IpAddress.parse(opt(run, 'gateway'));
  const client = IpAddress.parse(opt(run, 'client'));
  const internalPort = Number(opt(run, 'port'));
  const nonce = new Uint8Array(randomBytes(PCP_NONCE_LEN));
  const request = encodePcpMap({ client, nonce, internalPort, suggestedPort: Number(opt(run, 'external')), lifetimeS: Number(opt(run, 'lifetime')) });
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind({ address: client.toString(), port: 0 }, r));
  let timer: NodeJS.Timeout | undefined;
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
    let wait = windowed(250);
    const sendOnce = () => {
      if (wait > windowed(2000)) return resolve({ ok: false, problem });
      s.send(request, PCP_SERVER_PORT, gateway.toString(), () => undefined);
      timer = setTimeout(sendOnce, wait);
      wait *= 2;
    };
    sendOnce();
  });
  clearTimeout(timer);
  run.out(result);
  s.close();
}

const modes: Record<string, (run: Run) => Promise<void>> = { server, observe, filter, listen, send: sendMode, punch, tcp, pcp };
const line = (v: unknown): void => void process.stdout.write(JSON.stringify(v) + '\n');

/**
 * Many probes from one process: a lab's rows each ran ~10 probes per host, and in a TCG guest
 * every node start costs seconds (2.5-7.5 s measured), which made the truth table take longer
 * than a CI run has. Requests are JSON lines on stdin, `{"id", "args": [MODE, …]}`, run at once
 * and side by side; each line a probe prints comes back as `{"id", "out"}`, then `{"id", "end"}`
 * (with `error` if it failed). `{"id", "stop": true}` is a listener's --stdin signal. Bad lines
 * are answered with an error and change nothing; the process ends when stdin closes.
 */
const MAX_REQUEST = 4096;
const stops = new Map<string, () => void>();
function serve(): void {
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const text = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (text.trim()) request(text);
    }
    if (buf.length > MAX_REQUEST) {
      line({ id: null, end: true, error: `a request line over ${MAX_REQUEST} bytes was dropped` });
      buf = '';
    }
  });
  process.stdin.on('end', () => process.exit(0));
}

function request(text: string): void {
  let req: { id?: unknown; args?: unknown; stop?: unknown };
  try {
    req = JSON.parse(text) as typeof req;
  } catch {
    return line({ id: null, end: true, error: 'a request is one JSON object per line' });
  }
  const id = typeof req.id === 'string' ? req.id : undefined;
  if (id === undefined) return line({ id: null, end: true, error: 'a request needs a string "id"' });
  if (req.stop === true) return void stops.get(id)?.();
  const args = Array.isArray(req.args) && req.args.every((a): a is string => typeof a === 'string') ? req.args : undefined;
  const mode = args && args[0] !== 'server' ? modes[args[0] ?? ''] : undefined;
  if (!args || !mode) return line({ id, end: true, error: `"args" must start with a mode (${Object.keys(modes).filter((m) => m !== 'server').join(', ')})` });
  const stopped = new Promise<void>((r) => stops.set(id, r));
  mode({ args: args.slice(1), out: (v) => line({ id, out: v }), stopped })
    .then(() => line({ id, end: true }), (err: unknown) => line({ id, end: true, error: (err as Error).message }))
    .finally(() => stops.delete(id));
}

const modeName = process.argv[2] ?? '';
if (modeName === 'serve') serve();
else {
  const mode = modes[modeName];
  if (!mode) {
    console.error(`probe: mode must be one of serve, ${Object.keys(modes).join(', ')}`);
    process.exit(2);
  }
  const stopped = new Promise<void>((r) => process.stdin.once('close', r).once('end', r));
  if (process.argv.includes('--stdin')) process.stdin.resume();
  mode({ args: process.argv.slice(3), out: line, stopped })
    .then(() => {
      // A one-shot probe ends with its mode, not with its last handle (pcp's socket, a listener's stdin).
      if (modeName !== 'server') process.exit(0);
    })
    .catch((err: unknown) => {
      console.error(`probe: ${(err as Error).message}`);
      process.exit(1);
    });
}
