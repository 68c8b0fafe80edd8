import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../core/exec.js';
import type { JoinCode } from '../core/join-code.js';
import type { AgentConfig } from '../core/protocol.js';
import { formatWgQuick } from '../core/wgquick.js';
import { generateKeyPair } from '../core/wireguard/keys.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface EnrolReply {
  name: string;
  address: string;
  listenPort: number | null;
  token: string;
  hub: { publicKey: string; endpoint: string; allowedIps: string[]; keepalive: number; apiUrl: string };
}

export interface Enrolled {
  conf: string;
  agentJson: string;
  config: AgentConfig;
}

const wgQuick = (action: 'up' | 'down', conf: string) => run('wg-quick', [action, conf], { env: { ...process.env, WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go' }, timeoutMs: 20_000, allowFail: action === 'down' });

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
  writeFileSync(
    tmpConf,
    formatWgQuick({
      interface: { privateKey: code.key, address: [code.address], preUp: [], postUp: [], preDown: [], postDown: [] },
      peers: [{ publicKey: code.hubPublicKey, endpoint: code.hubEndpoint, allowedIps: [`${code.hubAddress}/32`], persistentKeepalive: 1 }],
    }),
    { mode: 0o600 },
  );
  let reply: EnrolReply;
  try {
    await wgQuick('up', tmpConf);
    const deadline = Date.now() + (opts.handshakeTimeoutMs ?? 8000);
    for (;;) {
      const hs = (await run('wg', ['show', tmpIf, 'latest-handshakes'], { allowFail: true })).stdout.trim().split(/\s+/)[1];
      if (hs && hs !== '0') break;
      if (Date.now() > deadline) {
        throw new Error(
          `no WireGuard handshake with the hub at ${code.hubEndpoint}: it is not the hub this code names (public key ${code.hubPublicKey}), it is unreachable, or it no longer accepts this code; nothing was changed`,
        );
      }
      await sleep(50);
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
    await wgQuick('down', tmpConf);
    rmSync(tmp, { recursive: true, force: true });
  }
  // The hub put our own key on its interface before it replied: our first handshake finds it.
  const conf = join(opts.dir, `${opts.ifname}.conf`);
  writeFileSync(
    conf,
    formatWgQuick({
      interface: { privateKey: keys.privateKey, address: [reply.address], listenPort: reply.listenPort ?? undefined, preUp: [], postUp: [], preDown: [], postDown: [] },
      peers: [{ publicKey: reply.hub.publicKey, endpoint: reply.hub.endpoint, allowedIps: reply.hub.allowedIps, persistentKeepalive: reply.hub.keepalive, comment: 'hub' }],
    }),
    { mode: 0o600 },
  );
  const config: AgentConfig = { name: reply.name, hubUrl: reply.hub.apiUrl, token: reply.token, interface: opts.ifname };
  const agentJson = join(opts.dir, `${reply.name}.agent.json`);
  writeFileSync(agentJson, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  await wgQuick('up', conf);
  return { conf, agentJson, config };
}
