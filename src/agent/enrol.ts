import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { enrolReplySchema } from '../core/enrol-reply.js';
import { run } from '../core/exec.js';
import { HostPort, type Endpoint } from '../core/net/endpoint.js';
import type { JoinCode } from '../core/join-code.js';
import type { AgentConfig } from '../core/protocol.js';
import type { StreamConfig } from '../core/stream/config.js';
import { writeSecret } from '../core/secret-file.js';
import { formatWgQuick } from '../core/wgquick.js';
import { generateKeyPair } from '../core/wireguard/keys.js';
import { removeJoinNote, removeLeftoverJoin, tmpPrefix, writeJoinNote } from './join-leftover.js';
import { describeAttempt, JoinStream, joinPlan, proxyShown, type JoinAttempt, type JoinTransport } from './join-transport.js';
import { createLogger } from '../core/log.js';
import { postJson } from '../core/http-post.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(done: () => boolean, ms: number): Promise<void> {
  for (const end = performance.now() + ms; !done() && performance.now() < end; ) await sleep(20);
}

export interface Enrolled {
  conf: string;
  agentJson: string;
  config: AgentConfig;
}

export interface EnrolResult extends Enrolled {
  /** How the join reached the hub (UDP, or the stream when UDP gave no handshake). */
  transport: JoinTransport;
}

/**
 * The hub's endpoints with those this device has a route to first: an IPv6-only network has no
 * IPv4 route (and the reverse), so its join does not spend its first seconds on a family it lacks.
 * A DNS name keeps its place: the resolver picks the family.
 */
async function reachableFirst(endpoints: readonly string[]): Promise<string[]> {
  if (endpoints.length < 2) return [...endpoints];
  const routed = await Promise.all(
    endpoints.map(async (e) => {
      const address = HostPort.parse(e).address;
      if (!address) return true;
      return (await run('ip', ['route', 'get', address.toString()], { allowFail: true })).code === 0;
    }),
  );
  return [...endpoints.filter((_, i) => routed[i]), ...endpoints.filter((_, i) => !routed[i])];
}

const wgQuick = (action: 'up' | 'down', conf: string) => run('wg-quick', [action, conf], { env: { ...process.env, WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go' }, timeoutMs: 20_000, allowFail: action === 'down' });

/**
 * The one-time tunnel goes by deleting its link, which is all `wg-quick down` does for a config
 * without hooks, DNS or a default route (its routes and, with wireguard-go, the daemon go with
 * the link), without the 0.1-0.3 s of the script (measured in the lab's joins). It has to be gone
 * before the real config comes up: both route the hub's address.
 */
const dropTunnel = (ifname: string) => run('ip', ['link', 'delete', 'dev', ifname], { allowFail: true });

/**
 * Checks the hub's reply and writes the device's files from it: nothing is written unless every
 * field passes (enrol-reply.ts), and the reply must be for the node the code names. Exported for
 * the tests: the rest of the join needs root.
 */
export function writeEnrolment(raw: unknown, opts: { dir: string; ifname: string; privateKey: string; joinedVia: string; codeName: string; stream?: StreamConfig }): Enrolled {
  const r = enrolReplySchema.safeParse(raw);
  if (!r.success) {
    const fields = r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ');
    throw new Error(`the hub's enrolment reply is not valid (${fields}); nothing was written. Is the hub of this release?`);
  }
  const reply = r.data;
  if (reply.name !== opts.codeName) throw new Error(`the hub answered for node "${reply.name}", but the join code is for "${opts.codeName}"; nothing was written`);
  // The hub put our own key on its interface before it replied: our first handshake finds it.
  const conf = join(opts.dir, `${opts.ifname}.conf`);
  const confText = formatWgQuick({
    interface: { privateKey: opts.privateKey, address: [reply.address, ...(reply.address6 ? [reply.address6] : [])], listenPort: reply.listenPort ?? undefined, preUp: [], postUp: [], preDown: [], postDown: [] },
    peers: [{ publicKey: reply.hub.publicKey, endpoint: opts.joinedVia, allowedIps: reply.hub.allowedIps, persistentKeepalive: reply.hub.keepalive, comment: 'hub' }],
  });
  // The endpoint that answered goes first: the agent falls back to the others by itself.
  const all = reply.hub.endpoints ?? (reply.hub.endpoint ? [reply.hub.endpoint] : []);
  const hubEndpoints = [opts.joinedVia, ...all.filter((e) => e !== opts.joinedVia)].slice(0, 2);
  // The stream side's pin comes from the join code, which came out of band like the hub's key.
  const config: AgentConfig = { name: reply.name, hubUrl: reply.hub.apiUrl, token: reply.token, interface: opts.ifname, hubEndpoints, ...(opts.stream ? { stream: opts.stream } : {}) };
  const agentJson = join(opts.dir, `${reply.name}.agent.json`);
  writeSecret(conf, confText);
  writeSecret(agentJson, JSON.stringify(config, null, 2) + '\n');
  return { conf, agentJson, config };
}

/**
 * How long the first handshake of `ifname`'s one peer took, if it came within `ms`; stops early
 * when `refused` says the stream was refused for good (the words are the stream's).
 */
async function handshakeWithin(ifname: string, ms: number, refused: () => string | undefined): Promise<number | 'refused' | undefined> {
  const start = performance.now();
  const deadline = start + ms;
  while (performance.now() < deadline) {
    const hs = (await run('wg', ['show', ifname, 'latest-handshakes'], { allowFail: true })).stdout.trim().split(/\s+/)[1];
    if (hs && hs !== '0') return Math.round(performance.now() - start);
    if (refused()) return 'refused';
    await sleep(50);
  }
  return undefined;
}

/** Why the join found no hub, with what was tried. */
function noHandshake(code: JoinCode, endpoints: readonly string[], plan: readonly JoinAttempt[], stream: JoinStream | undefined): string {
  const udp = `no WireGuard handshake with the hub at ${endpoints.join(' or ')}: it is not the hub this code names (public key ${code.hubPublicKey}), it is unreachable, or it no longer accepts this code`;
  if (!plan.some((a) => a.kind === 'stream')) return `${udp}; nothing was changed (the code names no stream side, so a network that blocks UDP cannot join: get a code from a hub of this release)`;
  if (stream?.refusal) return `${udp}; over TLS on TCP ${code.stream!.port} ${stream.refusal}; nothing was changed`;
  const failure = stream?.lastFailure;
  return `${udp}; over TLS on TCP ${code.stream!.port} ${failure ? `the stream failed (${failure})` : stream?.up ? 'the stream was up but no handshake came through it' : 'nothing answered'}; nothing was changed. If this network allows only a web proxy, set HTTPS_PROXY=http://PROXY:PORT`;
}

/**
 * Takes the one-time tunnel down and its key file away on SIGINT and SIGTERM as well as at the
 * end; the note (join-leftover.ts) covers what a signal cannot (SIGKILL). The exit codes are the
 * shell's for a death by that signal, so a script still sees that the join was interrupted.
 */
function cleanupOnSignal(cleanup: () => Promise<void>): () => void {
  const onSignal = (sig: NodeJS.Signals) => {
    void cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/**
 * Joins this device with a code: makes its own key, proves itself to the hub over a one-time
 * tunnel (which also proves the hub: the handshake needs the private key of the hub the code
 * names), registers its public key, then writes and brings up its real config. On any failure
 * nothing is left behind.
 */
export async function enrol(code: JoinCode, opts: { dir: string; ifname: string; handshakeTimeoutMs?: number; progress?: (line: string) => void }): Promise<EnrolResult> {
  const left = await removeLeftoverJoin(opts.dir, dropTunnel);
  if (left) process.stderr.write(`wgp2p: removed what an interrupted join left behind (interface ${left.ifname} and its one-time key)\n`);
  const keys = generateKeyPair();
  const tmpIf = `wgj${process.pid % 1_000_000}`;
  const endpoints = await reachableFirst(code.hubEndpoints);
  const hubRoute = [`${code.hubAddress}/32`];
  const tmp = mkdtempSync(tmpPrefix());
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    joinStream?.stop();
    await dropTunnel(tmpIf);
    rmSync(tmp, { recursive: true, force: true });
    removeJoinNote(opts.dir);
  };
  const release = cleanupOnSignal(cleanup);
  let raw: unknown;
  let joinedVia: string | undefined;
  let transport: JoinTransport | undefined;
  let joinStream: JoinStream | undefined;
  try {
    writeJoinNote(opts.dir, { pid: process.pid, ifname: tmpIf, tmp });
    const tmpConf = join(tmp, `${tmpIf}.conf`);
    writeSecret(
      tmpConf,
      formatWgQuick({
        interface: { privateKey: code.key, address: [code.address, ...(code.address6 ? [code.address6] : [])], preUp: [], postUp: [], preDown: [], postDown: [] },
        peers: [{ publicKey: code.hubPublicKey, endpoint: endpoints[0], allowedIps: hubRoute, persistentKeepalive: 1 }],
      }),
    );
    await wgQuick('up', tmpConf);
    const plan = joinPlan(endpoints, code.stream, { udpMs: opts.handshakeTimeoutMs });
    const wgPort = Number((await run('wg', ['show', tmpIf, 'listen-port'])).stdout.trim());
    const streamFor = (relay: HostPort) => new JoinStream(code, code.stream!, relay, wgPort, createLogger('join'));
    // The first stream is opened while UDP is tried: TCP, the proxy's CONNECT and TLS are then
    // done by the time UDP has had its time, and a refused code is known at once.
    const first = plan.find((a) => a.kind === 'stream');
    let warm: { stream: JoinStream; local: Promise<Endpoint> } | undefined;
    if (first?.kind === 'stream') {
      const stream = streamFor(first.relay);
      warm = { stream, local: stream.start() };
      // Awaited only if UDP gives no handshake; a failure to bind is then reported there.
      warm.local.catch(() => undefined);
      joinStream = stream;
    }
    for (const [i, attempt] of plan.entries()) {
      if (i > 0) opts.progress?.(`no handshake by ${describeAttempt(plan[i - 1])} within ${(plan[i - 1].waitMs / 1000).toFixed(1)} s; trying ${describeAttempt(attempt)}`);
      // A fresh peer entry for each attempt after the first: wireguard-go sends at most one
      // handshake initiation per 5 s to a peer it already tried.
      let endpoint = attempt.kind === 'udp' ? attempt.endpoint : '';
      let waitMs = attempt.waitMs;
      if (attempt.kind === 'stream') {
        let stream: JoinStream;
        let local: Endpoint;
        if (warm && warm.stream.relay === attempt.relay) {
          stream = warm.stream;
          local = await warm.local;
        } else {
          joinStream?.stop();
          stream = streamFor(attempt.relay);
          joinStream = stream;
          local = await stream.start();
        }
        endpoint = local.toString();
        // The shim drops what WireGuard sends before the stream is up: pointed at it earlier, the
        // first initiation would be lost and the next one come 5 s later.
        const t = performance.now();
        await until(() => stream.up || stream.refusal !== undefined, attempt.waitMs);
        if (stream.refusal) break;
        if (!stream.up) continue;
        waitMs = Math.max(1000, attempt.waitMs - (performance.now() - t));
      }
      if (i > 0) {
        await run('wg', ['set', tmpIf, 'peer', code.hubPublicKey, 'remove']);
        await run('wg', ['set', tmpIf, 'peer', code.hubPublicKey, 'endpoint', endpoint, 'allowed-ips', hubRoute.join(','), 'persistent-keepalive', '1']);
      }
      // A refused stream stops only a stream attempt: UDP may work where TLS is intercepted.
      const ms = await handshakeWithin(tmpIf, waitMs, () => (attempt.kind === 'stream' ? joinStream?.refusal : undefined));
      if (ms === 'refused') break;
      if (ms !== undefined) {
        joinedVia = attempt.kind === 'udp' ? attempt.endpoint : endpoints[0];
        transport = attempt.kind === 'udp' ? { kind: 'udp', endpoint: attempt.endpoint, handshakeMs: ms } : { kind: 'stream', relay: attempt.relay.toString(), proxy: proxyShown(attempt.relay), handshakeMs: ms };
        break;
      }
    }
    if (!joinedVia) throw new Error(noHandshake(code, endpoints, plan, joinStream));
    const res = await postJson(`http://${code.hubAddress}:${code.apiPort}/v1/enrol`, { publicKey: keys.publicKey }, { timeoutMs: 10_000, what: 'the enrol request' });
    const body = res.body;
    if (res.status !== 200) {
      const error = (body as { error?: unknown } | undefined)?.error;
      // The hub's words go to a terminal: one line, no control characters, bounded.
      const said = typeof error === 'string' ? error.replace(/[\x00-\x1f\x7f]+/g, ' ').slice(0, 300) : `HTTP ${res.status}`;
      throw new Error(`the hub refused: ${said}`);
    }
    raw = body;
  } finally {
    await cleanup();
    release();
  }
  const done = writeEnrolment(raw, { dir: opts.dir, ifname: opts.ifname, privateKey: keys.privateKey, joinedVia: joinedVia!, codeName: code.name, stream: code.stream });
  await wgQuick('up', done.conf);
  return { ...done, transport: transport! };
}
