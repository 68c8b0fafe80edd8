import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { adminGet } from '../core/admin-socket.js';
import { run } from '../core/exec.js';
import { Endpoint } from '../core/net/endpoint.js';
import { publicKeyOf } from '../core/wireguard/keys.js';
import type { WireGuardDevice } from '../core/wireguard/device.js';
import { decode } from '../core/protocol.js';
import { hubStatusSchema, type HubStatusJson, type PairStatusJson as PairStatus } from '../core/status.js';
import type { Lab } from './lab.js';
import { scaled } from './time-scale.js';
import { msUntilPingReply, wgQuickUp } from './wireguard.js';

/**
 * Drives the real CLI inside a lab: a hub on a public host, agents and plain clients behind NATs.
 * Every step is what a user would type, run in the node's namespace; tests, benchmarks and the
 * demo share it.
 */

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The last lines of a lab process's log, for an error that would otherwise only say "timed out". */
function logTail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(no log: ${(err as Error).message})`;
  }
}

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const HUB_TUNNEL = '10.99.0.1';
const HUB_PORT = 51820;

/** What `node add --json` prints that the driver uses. */
const addedNodeSchema = z.object({ address: z.string(), address6: z.string().optional(), publicKey: z.string().optional() });

export interface ScenarioNode {
  name: string;
  host: string;
  ifname: string;
  /** Tunnel addresses: every node has one of each family. */
  address: string;
  address6?: string;
  kind: 'agent' | 'client';
  /** pid of the agent process (agents only). */
  pid?: number;
}

export class Scenario {
  readonly dir: string;
  readonly hubIf: string;
  hubPid?: number;
  /** Extra arguments for `wgp2p hub run` (e.g. --no-relay). */
  hubRunArgs: string[] = [];
  readonly nodes = new Map<string, ScenarioNode>();
  /**
   * Public keys the CLI has already printed (`node add --json`, the list after a join): a node's
   * key does not change once it has one, and each `node list` is a node start (11-60 s in a TCG
   * guest; seed 000 asked six times).
   */
  private readonly keys = new Map<string, string>();

  constructor(
    readonly lab: Lab,
    readonly hubHost = 'hub',
  ) {
    this.dir = join(lab.logDir, 'hub');
    this.hubIf = this.ifname('hub');
  }

  /** Interface names are machine-wide with wireguard-go: prefix them with the lab's name. */
  ifname(role: string): string {
    const name = `${this.lab.name.slice(0, 9)}-${role}`.slice(0, 15);
    for (const n of this.nodes.values()) if (n.ifname === name) throw new Error(`interface ${name} is taken by ${n.name}: node names must differ in their first 5 characters`);
    return name;
  }

  /**
   * The environment of wgp2p on `host`: the log level, and HTTPS_PROXY where the host's network
   * lets it out only through the lab's HTTP proxy, as a user there would have it set.
   */
  envOf(host: string): NodeJS.ProcessEnv {
    return { WGP2P_LOG: process.env.WGP2P_LOG ?? 'info', ...this.proxyEnv(host) };
  }

  private proxyEnv(host: string): NodeJS.ProcessEnv {
    const proxy = this.lab.proxyOf(host);
    return proxy ? { HTTPS_PROXY: proxy } : {};
  }

  cli(host: string | undefined, args: string[], opts: { allowFail?: boolean } = {}) {
    return host ? this.lab.exec(host, process.execPath, [CLI, ...args], { allowFail: opts.allowFail, timeoutMs: scaled(30_000), env: { ...process.env, ...this.proxyEnv(host) } }) : run(process.execPath, [CLI, ...args], { allowFail: opts.allowFail, timeoutMs: scaled(30_000) });
  }

  /** The hub's endpoints on the lab's internet, IPv4 first: one per family its host has. */
  hubEndpoints(): Endpoint[] {
    return this.lab.host(this.hubHost).addresses
      .slice()
      .sort((x, y) => x.family - y.family)
      .map((a) => Endpoint.of(a, HUB_PORT));
  }

  /** `hub init` with an endpoint for each family the hub's host has. */
  async initHub(extra: string[] = []): Promise<void> {
    const endpoints = this.hubEndpoints().flatMap((e) => ['--endpoint', e.toString()]);
    await this.cli(undefined, ['hub', 'init', '--dir', this.dir, ...endpoints, '--address', `${HUB_TUNNEL}/24`, ...extra]);
    await this.upConf(this.hubHost, join(this.dir, 'hub.conf'), this.hubIf);
    await this.startHub();
  }

  /**
   * The seed-000 cast: a running hub, an agent "device" on host `deviceHost` (connected, its
   * endpoint seen), and a client "phone" on host `clientHost`, added but not started.
   */
  async hubDeviceAndPhone(deviceHost = 'device', clientHost = 'client', hubArgs: string[] = []): Promise<ScenarioNode> {
    await this.initHub(hubArgs);
    const device = await this.addNode('device', 'agent', deviceHost);
    await this.startAgent('device');
    await this.addNode('phone', 'client', clientHost);
    return device;
  }

  async startHub(): Promise<void> {
    // A hub that was killed left its socket behind: wait for a hub that answers, not for the file.
    rmSync(join(this.dir, 'hub.sock'), { force: true });
    this.hubPid = this.lab.spawn(this.hubHost, 'hub', process.execPath, [CLI, 'hub', 'run', '--dir', this.dir, '--interface', this.hubIf, ...this.hubRunArgs], { WGP2P_LOG: process.env.WGP2P_LOG ?? 'info' });
    // 20 s: under TCG on a loaded machine `wgp2p --help` alone took 40-70 s (x the lab's scale).
    await this.waitWhileRunning(this.hubPid, `${this.hubHost}.hub`, async () => (await adminGet<unknown>(join(this.dir, 'hub.sock'), '/v1/status').then(() => true, () => false)), 20_000, 'the hub to start');
  }

  /**
   * waitFor, for a condition only a running process can bring about: once it has exited, fails at
   * once with the end of its log (`log`, the lab's name for it), which in a guest goes with the
   * guest, instead of waiting out the deadline and saying only "timed out".
   */
  async waitWhileRunning(pid: number, log: string, pred: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    let exited = false;
    await this.waitFor(async () => (exited = !isRunning(pid)) || (await pred()), timeoutMs, what);
    if (exited && !(await pred().catch(() => false))) throw new Error(`waiting for ${what}: the process (${log}) exited; its log ends:\n${logTail(join(this.lab.logDir, `${log}.log`))}`);
  }

  async killHub(): Promise<void> {
    if (this.hubPid === undefined) return;
    try {
      process.kill(this.hubPid, 'SIGKILL');
    } catch {
      /* gone */
    }
    this.hubPid = undefined;
    await sleep(100);
  }

  /** wg-quick up a config under a lab-unique interface name (wg-quick names the interface after the file). */
  async upConf(host: string, conf: string, ifname: string): Promise<void> {
    const dir = join(this.lab.logDir, 'conf', host);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const copy = join(dir, `${ifname}.conf`);
    copyFileSync(conf, copy);
    await this.lab.recordWireGuard(host, ifname);
    await wgQuickUp(this.lab.ns(host), copy, this.lab.dataPlane);
  }

  async down(host: string, ifname: string): Promise<void> {
    await run('wg-quick', ['down', join(this.lab.logDir, 'conf', host, `${ifname}.conf`)], { netns: this.lab.ns(host), allowFail: true });
  }

  /** Whether a lab host has no IPv4 address (an IPv6-only network): its configs must use IPv6 endpoints. */
  ipv6Only(host: string): boolean {
    return this.lab.host(host).addresses.every((a) => a.family === 6);
  }

  /** `--hub-endpoint` for a node on `host`: the hub's IPv6 endpoint for an IPv6-only host, else the default (the first). */
  private hubEndpointArgs(host: string): string[] {
    if (!this.ipv6Only(host)) return [];
    const v6 = this.hubEndpoints().find((e) => e.family === 6);
    if (!v6) throw new Error(`host "${host}" is IPv6-only and the hub's host "${this.hubHost}" has no IPv6 address; give it address6`);
    return ['--hub-endpoint', v6.toString()];
  }

  async addNode(name: string, kind: 'agent' | 'client', host: string, extra: string[] = []): Promise<ScenarioNode> {
    const r = await this.cli(undefined, ['node', 'add', name, '--dir', this.dir, `--${kind}`, '--json', ...this.hubEndpointArgs(host), ...extra]);
    const out = decode(addedNodeSchema, r.stdout, 'wgp2p node add --json');
    const n: ScenarioNode = { name, host, ifname: this.ifname(name.slice(0, 5)), address: out.address, address6: out.address6, kind };
    this.nodes.set(name, n);
    if (out.publicKey) this.keys.set(name, out.publicKey);
    return n;
  }

  /** Brings an agent's interface up from NAME.conf and starts `wgp2p agent run`; waits until the hub has seen it. */
  /**
   * Starts these agents at once, not waiting for each, then waits until all are connected to the
   * hub: how two machines come up together. The milliseconds from the first start.
   */
  async startAgentsTogether(names: string[], timeoutMs = 20_000): Promise<number> {
    const t0 = Date.now();
    for (const n of names) await this.startAgent(n, { wait: false });
    await this.waitFor(async () => (await this.hubStatus()).nodes.filter((n) => n.connected && names.includes(n.name)).length === names.length, timeoutMs, `${names.join(' and ')} to connect`);
    return Date.now() - t0;
  }

  async startAgent(name: string, opts: { wait?: boolean; args?: string[] } = {}): Promise<void> {
    const n = this.nodes.get(name)!;
    await this.upConf(n.host, join(this.dir, 'nodes', `${name}.conf`), n.ifname);
    n.pid = this.lab.spawn(n.host, `agent-${name}`, process.execPath, [CLI, 'agent', 'run', '--config', join(this.dir, 'nodes', `${name}.agent.json`), '--interface', n.ifname, ...(opts.args ?? [])], this.envOf(n.host));
    if (opts.wait === false) return;
    await this.waitWhileRunning(n.pid, `${n.host}.agent-${name}`, async () => (await this.hubStatus()).nodes.some((x) => x.name === name && x.connected === true && x.endpoint !== null), 15_000, `agent ${name} to connect`);
  }

  /** A relay on its own host: `node add --relay`, its tunnel up, `wgp2p relay run`; waits until the hub has it. */
  async startRelay(name: string, host: string, ports = '53000-53099'): Promise<ScenarioNode> {
    const r = await this.cli(undefined, ['node', 'add', name, '--dir', this.dir, '--relay', '--json']);
    const n: ScenarioNode = { name, host, ifname: this.ifname(name.slice(0, 5)), address: (JSON.parse(r.stdout) as { address: string }).address, kind: 'agent' };
    await this.upConf(host, join(this.dir, 'nodes', `${name}.conf`), n.ifname);
    const address = this.lab.address(host, this.ipv6Only(host) ? 6 : 4);
    n.pid = this.lab.spawn(host, `relay-${name}`, process.execPath, [CLI, 'relay', 'run', '--config', join(this.dir, 'nodes', `${name}.relay.json`), '--address', address, '--ports', ports], { WGP2P_LOG: process.env.WGP2P_LOG ?? 'info' });
    this.nodes.set(name, n);
    await this.waitFor(async () => ((await this.hubStatus()).relays ?? []).some((x) => x.name === name), 15_000, `relay ${name} to register`);
    return n;
  }

  /** `wgp2p node add NAME --agent --join`: returns the join code. */
  async joinCode(name: string, valid = '1h'): Promise<string> {
    const r = await this.cli(undefined, ['node', 'add', name, '--dir', this.dir, '--agent', '--join', '--join-valid', valid, '--json']);
    return (JSON.parse(r.stdout) as { code: string }).code;
  }

  /** `wgp2p join CODE` on a host; it stays running as the agent. Waits until the hub sees it. */
  /**
   * The common start of a mesh test: the hub, agents x and y on the hosts of the same names,
   * both running, and their pair direct.
   */
  async directPair(x: string, y: string): Promise<[ScenarioNode, ScenarioNode]> {
    await this.initHub();
    const nx = await this.addNode(x, 'agent', x);
    const ny = await this.addNode(y, 'agent', y);
    await this.startAgent(x);
    await this.startAgent(y);
    await this.waitPath(x, y, 'direct');
    return [nx, ny];
  }

  /** Writes a join code where `wgp2p join --code-file` reads it, 0600 as a user would keep it: never in argv. */
  codeFile(name: string, code: string): string {
    const file = join(this.lab.logDir, `${name}.${Date.now()}.join-code`);
    writeFileSync(file, code + '\n', { mode: 0o600 });
    return file;
  }

  async join(name: string, host: string, code: string): Promise<ScenarioNode> {
    const ifname = this.ifname(name.slice(0, 5));
    const dir = join(this.lab.logDir, 'device', host);
    await this.lab.recordWireGuard(host, ifname);
    const pid = this.lab.spawn(host, `join-${name}`, process.execPath, [CLI, 'join', '--code-file', this.codeFile(name, code), '--interface', ifname, '--dir', dir], this.envOf(host));
    // `wgp2p join` stays running as the agent. Its address from the hub's status, the reply that
    // said it is connected, not from `node list`: one node start less (73 s once in a TCG guest).
    let address: string | undefined;
    await this.waitWhileRunning(pid, `${host}.join-${name}`, async () => (address = (await this.hubStatus()).nodes.find((x) => x.name === name && x.connected === true && x.endpoint !== null)?.address) !== undefined, 20_000, `${name} to join`);
    const n: ScenarioNode = { name, host, ifname, address: address!, kind: 'agent', pid };
    this.nodes.set(name, n);
    return n;
  }

  /**
   * Writes the client's current P2P (or proxied) config and brings it up; returns ms until `target`
   * answers. A client on an IPv6-only host gets the agents' IPv6 endpoints (`--family 6`).
   */
  async startClient(name: string, opts: { proxied?: boolean; pingTarget?: string; family?: 4 | 6 } = {}): Promise<number | undefined> {
    const n = this.nodes.get(name)!;
    const conf = join(this.lab.logDir, `${name}${opts.proxied ? '.proxied' : ''}.conf`);
    const family = opts.family ?? (this.ipv6Only(n.host) ? 6 : 4);
    const args = ['node', 'config', name, '--dir', this.dir, ...(opts.proxied ? ['--proxied'] : family === 6 ? ['--family', '6'] : [])];
    const text = (await this.cli(undefined, args)).stdout;
    writeFileSync(conf, text, { mode: 0o600 });
    const t0 = performance.now();
    await this.upConf(n.host, conf, n.ifname);
    if (!opts.pingTarget) return undefined;
    await msUntilPingReply(this.lab.ns(n.host), opts.pingTarget, 15_000);
    return Math.round(performance.now() - t0);
  }

  /**
   * What `wgp2p status --dir --json` prints: the hub's /v1/status on its admin socket, decoded
   * with the schema the CLI uses; empty while the hub does not answer. Read here rather than by
   * running the CLI: tests poll it in every wait, and in a TCG guest each node process took
   * 15-40 s to start (the CLI's own output is tested where it is what the test is about).
   */
  async hubStatus(): Promise<HubStatusJson> {
    const raw = await adminGet<unknown>(join(this.dir, 'hub.sock'), '/v1/status').catch(() => undefined);
    if (raw === undefined) return { hub: { interface: '', device: '', agentsConnected: 0, polls: 0, meanPollMs: 0, pushes: 0, groupsEnforced: false }, nodes: [], pairs: [], relays: [] };
    const r = hubStatusSchema.safeParse(raw);
    if (!r.success) throw new Error(`the hub's /v1/status: ${r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`);
    return r.data;
  }

  /** The hub's view of the pair of agents x and y. */
  async pair(x: string, y: string): Promise<PairStatus | undefined> {
    return (await this.hubStatus()).pairs?.find((p) => (p.a === x && p.b === y) || (p.a === y && p.b === x));
  }

  /** Waits until the pair x-y has confirmed `mode` (a relay counts once traffic came through it on both sides). */
  async waitPath(x: string, y: string, mode: 'direct' | 'relay' | 'hub', timeoutMs = 15_000): Promise<PairStatus> {
    let last: PairStatus | undefined;
    await this.waitFor(async () => {
      last = await this.pair(x, y);
      return last?.mode === mode && last.confirmed && !last.attempting;
    }, timeoutMs, `pair ${x}-${y} to be ${mode}`).catch((err: Error) => {
      throw new Error(`${err.message} (last: ${JSON.stringify(last)})`);
    });
    return last!;
  }

  /** The lab host an interface of this scenario lives on (the hub's, a node's). */
  hostOf(ifname: string): string {
    if (ifname === this.hubIf) return this.hubHost;
    const n = [...this.nodes.values()].find((x) => x.ifname === ifname);
    if (!n) throw new Error(`no node of this scenario has interface ${ifname}`);
    return n.host;
  }

  /** A scenario interface's device, on either data plane. */
  device(ifname: string): Promise<WireGuardDevice> {
    return this.lab.device(this.hostOf(ifname), ifname);
  }

  /** The endpoint an interface has for a peer, read from its own device. */
  async endpointOn(ifname: string, publicKey: string): Promise<string | undefined> {
    return (await (await this.device(ifname)).get()).peers.find((p) => p.publicKey === publicKey)?.endpoint?.toString();
  }

  /** The hub's public key, from the private key in its hub.conf (a WireGuard device reading has only the private half). */
  hubPublicKey(): string {
    const m = /^PrivateKey\s*=\s*(\S+)/m.exec(readFileSync(join(this.dir, 'hub.conf'), 'utf8'));
    if (!m) throw new Error(`no PrivateKey in ${join(this.dir, 'hub.conf')}`);
    return publicKeyOf(m[1]);
  }

  async publicKey(name: string): Promise<string> {
    const known = this.keys.get(name);
    if (known) return known;
    const r = await this.cli(undefined, ['node', 'list', '--dir', this.dir, '--json']);
    return (JSON.parse(r.stdout) as { name: string; publicKey: string }[]).find((x) => x.name === name)!.publicKey;
  }

  async waitFor(pred: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    timeoutMs = scaled(timeoutMs);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const t0 = Date.now();
      if (await pred().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      // Most conditions ask the hub: a poll may take at most a third of its time, or under TCG
      // (where a status reply took seconds) the waiting would starve what it waits for.
      await sleep(Math.max(50, 2 * (Date.now() - t0)));
    }
  }
}
