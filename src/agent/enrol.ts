import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../core/exec.js';
import { HostPort } from '../core/net/endpoint.js';
import type { JoinCode } from '../core/join-code.js';
import type { AgentConfig } from '../core/protocol.js';
import { formatWgQuick } from '../core/wgquick.js';
import { generateKeyPair } from '../core/wireguard/keys.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface EnrolReply {
  name: string;
  address: string;
  /** Absent from hubs of the release before IPv6. */
  address6?: string;
  listenPort: number | null;
  token: string;
  hub: { publicKey: string; endpoints?: string[]; endpoint?: string; allowedIps: string[]; keepalive: number; apiUrl: string };
}

export interface Enrolled {
  conf: string;
  agentJson: string;
  config: AgentConfig;
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
 * Joins this device with a code: makes its own key, proves itself to the hub over a one-time
 * tunnel (which also proves the hub: the handshake needs the private key of the hub the code
 * names), registers its public key, then writes and brings up its real config. On any failure
 * nothing is left behind.
 */
export async function enrol(code: JoinCode, opts: { dir: string; ifname: string; handshakeTimeoutMs?: number }): Promise<Enrolled> {
  const keys = generateKeyPair();
  const tmp = mkdtempSync(join(tmpdir(), 'wgp2p-join-'));
  const tmpIf = `wgj${process.pid % 1_000_000}`;
  const tmpConf = join(tmp, `${tmpIf}.conf`);
  const endpoints = await reachableFirst(code.hubEndpoints);
  const hubRoute = [`${code.hubAddress}/32`];
  writeFileSync(
    tmpConf,
    formatWgQuick({
      interface: { privateKey: code.key, address: [code.address, ...(code.address6 ? [code.address6] : [])], preUp: [], postUp: [], preDown: [], postDown: [] },
      peers: [{ publicKey: code.hubPublicKey, endpoint: endpoints[0], allowedIps: hubRoute, persistentKeepalive: 1 }],
    }),
    { mode: 0o600 },
  );
  let reply: EnrolReply;
  let joinedVia: string | undefined;
  try {
    await wgQuick('up', tmpConf);
    // Each endpoint gets an equal share of the time; the next one gets a fresh peer entry, because
    // wireguard-go sends at most one handshake initiation per 5 s to a peer it already tried.
    const share = (opts.handshakeTimeoutMs ?? 8000) / endpoints.length;
    for (const [i, endpoint] of endpoints.entries()) {
      if (i > 0) {
        await run('wg', ['set', tmpIf, 'peer', code.hubPublicKey, 'remove']);
        await run('wg', ['set', tmpIf, 'peer', code.hubPublicKey, 'endpoint', endpoint, 'allowed-ips', hubRoute.join(','), 'persistent-keepalive', '1']);
      }
      const deadline = Date.now() + share;
      while (Date.now() < deadline) {
        const hs = (await run('wg', ['show', tmpIf, 'latest-handshakes'], { allowFail: true })).stdout.trim().split(/\s+/)[1];
        if (hs && hs !== '0') {
          joinedVia = endpoint;
          break;
        }
        await sleep(50);
      }
      if (joinedVia) break;
    }
    if (!joinedVia) {
      throw new Error(
        `no WireGuard handshake with the hub at ${endpoints.join(' or ')}: it is not the hub this code names (public key ${code.hubPublicKey}), it is unreachable, or it no longer accepts this code; nothing was changed`,
      );
    }
    const res = await fetch(`http://${code.hubAddress}:${code.apiPort}/v1/enrol`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ publicKey: keys.publicKey }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await res.json()) as EnrolReply & { error?: string };
    if (res.status !== 200) throw new Error(`the hub refused: ${body.error ?? `HTTP ${res.status}`}`);
    reply = body;
  } finally {
    await dropTunnel(tmpIf);
    rmSync(tmp, { recursive: true, force: true });
  }
  // The hub put our own key on its interface before it replied: our first handshake finds it.
  const conf = join(opts.dir, `${opts.ifname}.conf`);
  writeFileSync(
    conf,
    formatWgQuick({
      interface: { privateKey: keys.privateKey, address: [reply.address, ...(reply.address6 ? [reply.address6] : [])], listenPort: reply.listenPort ?? undefined, preUp: [], postUp: [], preDown: [], postDown: [] },
      peers: [{ publicKey: reply.hub.publicKey, endpoint: joinedVia, allowedIps: reply.hub.allowedIps, persistentKeepalive: reply.hub.keepalive, comment: 'hub' }],
    }),
    { mode: 0o600 },
  );
  // The endpoint that answered goes first: the agent falls back to the others by itself.
  const all = reply.hub.endpoints ?? (reply.hub.endpoint ? [reply.hub.endpoint] : []);
  const hubEndpoints = [joinedVia!, ...all.filter((e) => e !== joinedVia)];
  const config: AgentConfig = { name: reply.name, hubUrl: reply.hub.apiUrl, token: reply.token, interface: opts.ifname, hubEndpoints };
  const agentJson = join(opts.dir, `${reply.name}.agent.json`);
  writeFileSync(agentJson, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  await wgQuick('up', conf);
  return { conf, agentJson, config };
}
