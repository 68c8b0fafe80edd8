import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run, type RunOptions, type RunResult } from '../core/exec.js';
import { IpAddress, type Family } from '../core/net/address.js';
import { openDevice, type WireGuardDevice } from '../core/wireguard/device.js';
import { getDevice, setDevice } from '../core/wireguard/uapi.js';
import { spawnDaemon } from './daemon.js';
import { defaultDataPlane, kernelWireGuardProblem, type DataPlane } from './data-plane.js';
import { NFT_TABLE, natRuleset } from './nat-rules.js';
import { addNamespace, deleteNamespace, ipBatch, killAllIn, listNamespaces, namespaceExists, sysctl } from './netns.js';
import { addressOf, decodePlan, ipv4Of, ipv4SubnetOf, ipv6Of, subnetOf, type HostPlan, type LabPlan, type RouterPlan, type SegmentPlan } from './plan.js';
import { preflight } from './preflight.js';
import { LAB_STATE_DIR, listStates, readState, removeState, writeState, type LabState } from './state.js';
import { segmentOf } from './topology.js';
import { miniupnpdConfig } from './upnp.js';
import { proxyUrl, tinyproxyConfig } from './http-proxy.js';
import { removeWireGuardSockets, startWireGuard, type WireGuardStart } from './wireguard.js';

export type Progress = (message: string, done: number, total: number) => void;

export interface UpOptions {
  topologyFile?: string;
  onProgress?: Progress;
}

const INTERNET = 'internet';
const active = new Set<Lab>();

/** A running lab: namespaces named `<lab>-<node>`, a record in /run, and helpers to drive it. */
export class Lab {
  /** Device readers already opened, by host and interface (only those that stay good by name). */
  private readonly devices = new Map<string, WireGuardDevice>();

  private constructor(
    readonly plan: LabPlan,
    private state: LabState,
  ) {}

  get name(): string {
    return this.plan.name;
  }

  ns(node: string): string {
    return labNamespace(this.name, node);
  }

  get logDir(): string {
    return join(LAB_STATE_DIR, this.name);
  }

  /** Which WireGuard this lab's tunnels run on. */
  get dataPlane(): DataPlane {
    return this.plan.dataPlane ?? 'userspace';
  }

  static async up(given: LabPlan, opts: UpOptions = {}): Promise<Lab> {
    // The data plane is fixed when the lab comes up and recorded with it, so that a process attaching later agrees.
    const plan: LabPlan = { ...given, dataPlane: given.dataPlane ?? defaultDataPlane() };
    const needsWg = plan.hosts.some((h) => h.wireguard);
    const kernel = plan.dataPlane === 'kernel';
    preflight([
      'ip',
      'nft',
      'sysctl',
      ...(plan.routers.some((r) => r.hairpin) ? ['conntrack'] : []),
      ...(plan.routers.some((r) => r.upnp) ? ['miniupnpd'] : []),
      ...(plan.routers.some((r) => r.nat === 'http-proxy') ? ['tinyproxy'] : []),
      ...(needsWg ? ['wg', ...(kernel ? [] : ['wireguard-go'])] : []),
    ]);
    if (kernel) {
      const problem = await kernelWireGuardProblem();
      if (problem) throw new Error(`lab "${plan.name}" asks for the kernel data plane, but ${problem}`);
    }
    const prefix = labNamespace(plan.name, '');
    if ((await readState(plan.name)) || (await listNamespaces()).some((n) => n.startsWith(prefix))) {
      throw new Error(`a lab named "${plan.name}" is already up (or left over); run "wgp2p lab down ${plan.name}" first`);
    }
    const nodes = [INTERNET, ...plan.routers.map((r) => r.name), ...plan.hosts.map((h) => h.name)];
    const lab = new Lab(plan, {
      name: plan.name,
      topologyFile: opts.topologyFile,
      createdAt: new Date().toISOString(),
      plan,
      namespaces: nodes.map((n) => labNamespace(plan.name, n)),
      wireguard: plan.hosts.filter((h) => h.wireguard).map((h) => ({ host: h.name, interface: h.wireguard!.interface })),
    });
    // The record is written before anything exists, so that a crash at any point leaves enough for `lab down`.
    await writeState(lab.state);
    await mkdir(lab.logDir, { recursive: true, mode: 0o700 });
    active.add(lab);
    const total = 1 + plan.routers.length + plan.hosts.length;
    let done = 0;
    const step = (msg: string) => opts.onProgress?.(msg, ++done, total);
    try {
      await lab.buildInternet();
      step('internet');
      for (const r of plan.routers) {
        await lab.buildRouter(r);
        step(`router ${r.name} (${r.carrierOf ? `carrier NAT of ${r.carrierOf}` : r.profile})`);
      }
      for (const h of plan.hosts) {
        await lab.buildHost(h);
        step(`host ${h.name}`);
      }
    } catch (err) {
      await lab.down();
      throw err;
    }
    return lab;
  }

  /** Attaches to a lab brought up earlier (by this or another process). */
  static async open(name: string): Promise<Lab> {
    const state = await readState(name);
    if (!state) throw new Error(`no lab named "${name}" is up (see "wgp2p lab status")`);
    const plan = decodePlan(state.plan);
    if (!plan) throw new Error(`the record of lab "${name}" holds no plan this wgp2p can read (damaged, or written by another version); remove the lab with "wgp2p lab down ${name}" and bring it up again`);
    return new Lab(plan, { ...state, plan });
  }

  static async list(): Promise<string[]> {
    return listStates();
  }

  /**
   * Removes everything a lab made: processes, namespaces, WireGuard sockets, its record.
   * Works from the record and from a namespace scan, so leftovers of a crashed run go too.
   */
  static async destroy(name: string): Promise<string[]> {
    const state = await readState(name).catch(() => undefined);
    const prefix = labNamespace(name, '');
    const namespaces = new Set([...(state?.namespaces ?? []), ...(await listNamespaces()).filter((n) => n.startsWith(prefix))]);
    // Kill everything first, so that no daemon is left holding a namespace while its neighbours go.
    await Promise.all([...namespaces].filter(namespaceExists).map((n) => killAllIn(n)));
    await Promise.all([...namespaces].map((n) => deleteNamespace(n)));
    // Kernel interfaces went with their namespaces; only wireguard-go leaves sockets (machine-wide) behind.
    if ((state?.plan === undefined ? undefined : decodePlan(state.plan))?.dataPlane !== 'kernel') await removeWireGuardSockets((state?.wireguard ?? []).map((w) => w.interface));
    await rm(join(LAB_STATE_DIR, name), { recursive: true, force: true });
    await removeState(name);
    return [...namespaces];
  }

  async down(): Promise<void> {
    active.delete(this);
    await Lab.destroy(this.name);
  }

  // ---- building -------------------------------------------------------------------------------

  private async buildInternet(): Promise<void> {
    const ns = this.ns(INTERNET);
    await addNamespace(ns);
    const inet = this.plan.internet;
    const v6 = this.ipv6Stack(INTERNET);
    await sysctl(ns, { 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.send_redirects': 0, ...(v6 ? { ...IPV6_ON, 'net.ipv6.conf.all.forwarding': 1 } : { 'net.ipv6.conf.all.disable_ipv6': 1 }) });
    await ipBatch(ns, [bridgeLine('br0', v6), ...gatewayAddresses(inet, 'br0'), 'link set br0 up']);
  }

  /**
   * Whether a node's namespace runs IPv6 at all. Hosts always do, because tunnels carry IPv6 inside
   * (wg-quick adds the node's IPv6 tunnel address), but their link to the network gets IPv6 only
   * where the network has it. Routers and the internet core run it only when given IPv6, so that
   * an IPv4 lab has no IPv6 path outside the tunnels.
   */
  private ipv6Stack(node: string): boolean {
    if (node === INTERNET) return subnetOf(this.plan.internet, 6) !== undefined;
    const r = this.plan.routers.find((x) => x.name === node);
    return r ? r.ipv6 !== undefined : true;
  }

  /**
   * Connects `node`'s namespace to a segment with a veth pair: `ifname` inside, the node's name on
   * the bridge side; each address goes with its family's subnet and default route.
   */
  private async plug(node: string, ifname: string, seg: SegmentPlan, addresses: readonly IpAddress[]): Promise<void> {
    const segNs = this.ns(seg.name);
    const bridge = seg.name === INTERNET ? 'br0' : 'lan';
    await run('ip', ['link', 'add', 'name', ifname, 'netns', this.ns(node), 'type', 'veth', 'peer', 'name', node, 'netns', segNs]);
    // A bridge port is layer 2: no link-local address of its own. Both ends are still down here,
    // and an interface gets its link-local address only when it comes up.
    if (this.ipv6Stack(seg.name)) await sysctl(segNs, { [`net.ipv6.conf.${node}.disable_ipv6`]: 1 });
    await ipBatch(segNs, [`link set dev ${node} master ${bridge}`, `link set dev ${node} up`]);
    if (this.ipv6Stack(node) && !addresses.some((a) => a.family === 6)) await sysctl(this.ns(node), { [`net.ipv6.conf.${ifname}.disable_ipv6`]: 1 });
    const lines = addresses.flatMap((a) => {
      const sub = subnetOf(seg, a.family);
      if (!sub) throw new Error(`${node}: ${a} is IPv${a.family} and network "${seg.name}" has no IPv${a.family} subnet`);
      // nodad: the lab assigns every address itself, and a tentative address cannot be bound for ~1 s.
      return [`addr add ${a}/${sub.subnet.prefix} dev ${ifname}${a.family === 6 ? ' nodad' : ''}`];
    });
    const routes = addresses.map((a) => `route replace ${a.family === 4 ? 'default' : '::/0'} via ${subnetOf(seg, a.family)!.gateway}`);
    await ipBatch(this.ns(node), [...lines, `link set dev ${ifname} up`, ...routes]);
  }

  private async buildRouter(r: RouterPlan): Promise<void> {
    const ns = this.ns(r.name);
    await addNamespace(ns);
    const v6 = this.ipv6Stack(r.name);
    await sysctl(ns, {
      'net.ipv4.ip_forward': 1,
      'net.ipv4.conf.all.send_redirects': 0,
      'net.ipv4.conf.all.rp_filter': 0,
      ...(v6 ? { ...IPV6_ON, 'net.ipv6.conf.all.forwarding': 1 } : { 'net.ipv6.conf.all.disable_ipv6': 1 }),
    });
    await bridgesStayLayer2(ns);
    await ipBatch(ns, [bridgeLine('lan', v6), ...gatewayAddresses(r.lan, 'lan'), 'link set lan up']);
    await this.plug(r.name, 'wan', segmentOf(this.plan, r.upstream)!, r.wan);
    if (r.upstream === INTERNET && (r.nat === 'open' || r.nat === 'firewall')) {
      // Public (un-NATed) LANs are routed by the internet core via the router's WAN address.
      const wan = ipv4Of(r.wan, `router "${r.name}"`);
      await ipBatch(this.ns(INTERNET), [`route add ${ipv4SubnetOf(r.lan).subnet} via ${wan}`]);
    }
    if (r.ipv6) {
      // The whole prefix is the router's, as a delegated prefix is a home router's.
      await ipBatch(this.ns(INTERNET), [`route add ${r.ipv6.prefix} via ${ipv6Of(r.wan, `router "${r.name}"`)}`]);
    }
    await run('nft', ['-f', '-'], { netns: ns, input: natRuleset(r) });
    if (r.hairpin) {
      this.daemon(r.name, 'hairpin', process.execPath, [
        new URL('./hairpin-daemon.js', import.meta.url).pathname,
        '--wan', ipv4Of(r.wan, `router "${r.name}"`).toString(),
        '--lan', ipv4SubnetOf(r.lan).subnet.toString(),
      ]);
    }
    if (r.upnp) await this.startMiniupnpd(r);
    if (r.nat === 'http-proxy') await this.startProxy(r);
  }

  private async startProxy(r: RouterPlan): Promise<void> {
    const conf = join(this.logDir, `${r.name}.tinyproxy.conf`);
    await writeFile(conf, tinyproxyConfig(r), { mode: 0o600 });
    // -d: in the foreground, so the lab owns its lifetime and `lab down` finds it in the namespace.
    this.daemon(r.name, 'tinyproxy', 'tinyproxy', ['-d', '-c', conf]);
  }

  private daemon(node: string, what: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): number {
    return spawnDaemon(this.ns(node), cmd, args, join(this.logDir, `${node}.${what}.log`), env);
  }

  private async startMiniupnpd(r: RouterPlan): Promise<void> {
    const conf = join(this.logDir, `${r.name}.miniupnpd.conf`);
    await writeFile(conf, miniupnpdConfig(r), { mode: 0o600 });
    // -d keeps it in the foreground (we own its lifetime); -f points at our config.
    this.daemon(r.name, 'miniupnpd', 'miniupnpd', ['-d', '-f', conf, '-P', join(this.logDir, `${r.name}.miniupnpd.pid`)]);
  }

  private async buildHost(h: HostPlan): Promise<void> {
    const ns = this.ns(h.name);
    await addNamespace(ns);
    await sysctl(ns, { ...IPV6_ON, 'net.ipv4.conf.all.rp_filter': 0 });
    await this.plug(h.name, 'eth0', segmentOf(this.plan, h.network)!, h.addresses);
    if (h.wireguard) {
      await startWireGuard(ns, h.wireguard.interface, { listenPort: h.wireguard.listenPort, logFile: join(this.logDir, `${h.name}.wireguard-go.log`), dataPlane: this.dataPlane });
    }
  }

  // ---- operating ------------------------------------------------------------------------------

  host(name: string): HostPlan {
    const h = this.plan.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`lab "${this.name}" has no host "${name}" (hosts: ${this.plan.hosts.map((x) => x.name).join(', ')})`);
    return h;
  }

  router(name: string): RouterPlan {
    const r = this.plan.routers.find((x) => x.name === name);
    if (!r) throw new Error(`lab "${this.name}" has no router "${name}"`);
    return r;
  }

  /**
   * The HTTPS_PROXY of a host whose network lets it out only through the lab's HTTP proxy (an
   * `http-proxy` router on its way out), else undefined.
   */
  proxyOf(host: string): string | undefined {
    for (let network = this.host(host).network; network !== INTERNET; network = this.router(network).upstream) {
      const r = this.router(network);
      if (r.nat === 'http-proxy') return proxyUrl(r);
    }
    return undefined;
  }

  /** A host's address of one family on its segment. */
  address(host: string, family: Family = 4): string {
    const what = `host "${host}"`;
    return (family === 4 ? ipv4Of(this.host(host).addresses, what) : ipv6Of(this.host(host).addresses, what)).toString();
  }

  /**
   * The address the internet sees for a node. IPv4: its own if public, else its outermost
   * router's WAN address. IPv6 is never translated: the node's own.
   */
  publicAddress(node: string, family: Family = 4): string {
    if (family === 6) {
      const h = this.plan.hosts.find((x) => x.name === node);
      return ipv6Of(h ? h.addresses : this.router(node).wan, node).toString();
    }
    let network = this.plan.hosts.find((h) => h.name === node)?.network;
    let addr = ipv4Of(network === undefined ? this.router(node).wan : this.host(node).addresses, node);
    if (network === undefined) network = this.router(node).upstream;
    while (network !== INTERNET) {
      const r = this.router(network);
      if (r.nat === 'open' || r.nat === 'firewall') break;
      addr = ipv4Of(r.wan, `router "${r.name}"`);
      network = r.upstream;
    }
    return addr.toString();
  }

  /** Every public address of a node, IPv4 first. */
  publicAddresses(node: string): string[] {
    const own = this.plan.hosts.find((h) => h.name === node)?.addresses ?? this.router(node).wan;
    return ([4, 6] as const).filter((f) => addressOf(own, f)).map((f) => this.publicAddress(node, f));
  }

  exec(node: string, cmd: string, args: readonly string[] = [], opts: Omit<RunOptions, 'netns'> = {}): Promise<RunResult> {
    if (!this.plan.hosts.some((h) => h.name === node) && !this.plan.routers.some((r) => r.name === node) && node !== INTERNET) {
      throw new Error(`lab "${this.name}" has no node "${node}"`);
    }
    return run(cmd, args, { ...opts, netns: this.ns(node) });
  }

  /** First free address of a segment in one family, for hosts that join or roam. */
  freeAddress(network: string, family: Family = 4): IpAddress {
    const seg = segmentOf(this.plan, network);
    if (!seg) throw new Error(`no network "${network}" in lab "${this.name}"`);
    const sub = subnetOf(seg, family);
    if (!sub) throw new Error(`network "${network}" has no IPv${family} subnet`);
    const taken = new Set<bigint>([
      sub.gateway.value,
      ...this.plan.hosts.filter((h) => h.network === network).flatMap((h) => h.addresses.map((a) => a.value)),
      ...this.plan.routers.filter((r) => r.upstream === network).flatMap((r) => r.wan.map((a) => a.value)),
    ]);
    for (let n = 2n; n < sub.subnet.size; n++) {
      const ip = sub.subnet.nth(n);
      if (sub.subnet.isUsableHost(ip) && !taken.has(ip.value)) return ip;
    }
    throw new Error(`network "${network}" has no free IPv${family} address`);
  }

  /**
   * Roams a host: unplugs it from its segment and plugs it into another, keeping its namespace and
   * every process (WireGuard included) running, like a laptop moving between Wi-Fi networks.
   *
   * wireguard-go keeps sending from the source address it cached for each endpoint ("sticky
   * sockets") and does not notice that the address is gone: measured here, the device goes silent
   * after a move. Phone and desktop WireGuard apps rebind their sockets when the OS reports a
   * network change, so by default we do the same (setting listen_port rebinds).
   *
   * The host gets an address in every family of the new network: `address` for its family, the
   * first free one for the others. Returns the IPv4 one.
   */
  async moveHost(host: string, network: string, address?: string, opts: { rebind?: boolean } = {}): Promise<string> {
    const h = this.host(host);
    const seg = segmentOf(this.plan, network);
    if (!seg) throw new Error(`no network "${network}" in lab "${this.name}"`);
    const given = address !== undefined ? parseAddress(address, seg) : undefined;
    const addresses = seg.subnets.map((s) => (given?.family === s.subnet.family ? given : this.freeAddress(network, s.subnet.family)));
    await run('ip', ['-n', this.ns(host), 'link', 'del', 'eth0']);
    await this.plug(host, 'eth0', seg, addresses);
    h.network = network;
    h.addresses = addresses;
    this.state.plan = this.plan;
    await writeState(this.state);
    if (opts.rebind ?? true) {
      for (const w of this.state.wireguard.filter((x) => x.host === host)) {
        const dev = await getDevice(w.interface).catch(() => undefined);
        if (dev) await setDevice(w.interface, { listenPort: dev.listenPort });
      }
    }
    return ipv4Of(addresses, `host "${host}"`).toString();
  }

  /**
   * The ISP hands a router a new public IPv4 address (a DHCP renew, a PPPoE reconnect): its WAN
   * address, default route and NAT rules move to `address` (default: the first free one of its
   * upstream), and every conntrack entry of the old address dies, as on a real router, where
   * the mappings are bound to the address that is gone. Nothing changes on the hosts behind it:
   * their links, addresses and routes stay, so `ip monitor` on them says nothing. Returns the new
   * address.
   */
  async renumberWan(router: string, address?: string): Promise<string> {
    const r = this.router(router);
    // Their daemons were started with the old address; the lab has no need to renumber them yet.
    if (r.hairpin || r.upnp) throw new Error(`router "${router}" runs ${r.hairpin ? 'a hairpin' : 'a UPnP'} daemon bound to its WAN address; renumbering is only built for routers without one`);
    const seg = segmentOf(this.plan, r.upstream)!;
    const sub = ipv4SubnetOf(seg);
    const old = ipv4Of(r.wan, `router "${router}"`);
    const next = address !== undefined ? parseAddress(address, seg) : this.freeAddress(r.upstream, 4);
    if (next.family !== 4) throw new Error(`renumberWan: ${address} is not an IPv4 address of ${seg.name} (${sub.subnet})`);
    // Deleting the address takes the default route with it (its gateway is on that prefix).
    await ipBatch(this.ns(router), [`addr del ${old}/${sub.subnet.prefix} dev wan`, `addr add ${next}/${sub.subnet.prefix} dev wan`, `route replace default via ${sub.gateway}`]);
    r.wan = [next, ...r.wan.filter((a) => a.family !== 4)];
    // One nft transaction: the old table goes and the new one comes, with no moment without rules.
    await run('nft', ['-f', '-'], { netns: this.ns(router), input: `table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n${natRuleset(r)}` });
    // The kernel already drops masqueraded entries of a removed address; entries toward the old
    // address (DNAT, inbound) are dropped here too. conntrack exits 1 when nothing matched.
    await run('conntrack', ['-D', '--reply-dst', old.toString()], { netns: this.ns(router), allowFail: true });
    await run('conntrack', ['-D', '--orig-dst', old.toString()], { netns: this.ns(router), allowFail: true });
    if (r.upstream === INTERNET && (r.nat === 'open' || r.nat === 'firewall')) {
      await ipBatch(this.ns(INTERNET), [`route replace ${ipv4SubnetOf(r.lan).subnet} via ${next}`]);
    }
    this.state.plan = this.plan;
    await writeState(this.state);
    return next.toString();
  }

  /**
   * The router's rules change to another profile in place (a hotel's network starts passing UDP,
   * say): one nft transaction replaces its table, and its conntrack entries go (what the old rules
   * let through or dropped is not what the new ones would). Nothing changes on the hosts behind it.
   */
  async setNatProfile(router: string, profile: RouterPlan['nat']): Promise<void> {
    const r = this.router(router);
    if (r.hairpin || r.upnp) throw new Error(`router "${router}" runs ${r.hairpin ? 'a hairpin' : 'a UPnP'} daemon built for its profile; changing the profile is only built for routers without one`);
    r.nat = profile;
    await run('nft', ['-f', '-'], { netns: this.ns(router), input: `table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n${natRuleset(r)}` });
    await run('conntrack', ['-F'], { netns: this.ns(router), allowFail: true });
    this.state.plan = this.plan;
    await writeState(this.state);
  }

  /** Starts a WireGuard interface on the lab's data plane in a host and records it for teardown. */
  async startWireGuard(host: string, ifname: string, opts: Omit<WireGuardStart, 'logFile'> = {}): Promise<void> {
    this.host(host);
    this.state.wireguard.push({ host, interface: ifname });
    await writeState(this.state);
    await startWireGuard(this.ns(host), ifname, { dataPlane: this.dataPlane, ...opts, logFile: join(this.logDir, `${host}.${ifname}.log`) });
  }

  /**
   * A host's WireGuard interface, read and set from outside the host: wireguard-go's UAPI socket,
   * or wg(8) run inside the host's namespace for a kernel interface.
   */
  async device(host: string, ifname: string): Promise<WireGuardDevice> {
    this.host(host);
    const key = `${host}/${ifname}`;
    const known = this.devices.get(key);
    if (known) return known;
    const dev = await openDevice(ifname, { netns: this.ns(host) });
    // A kernel interface in another namespace is read with wg(8) by its name, so the reader stays
    // good across a wg-quick down and up; opening it costs a `wg show` of its own (2.9 s each in a
    // TCG guest, where the mesh test read devices 7 times).
    if (dev.kind === 'wg-tool') this.devices.set(key, dev);
    return dev;
  }

  /** Records an interface that something else (wg-quick) brings up, so teardown removes its socket. */
  async recordWireGuard(host: string, ifname: string): Promise<void> {
    this.state.wireguard.push({ host, interface: ifname });
    await writeState(this.state);
  }

  get wireguardInterfaces(): { host: string; interface: string }[] {
    return [...this.state.wireguard];
  }

  /** Starts a helper process in a node that lives until teardown. */
  spawn(node: string, what: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): number {
    return this.daemon(node, what, cmd, args, env);
  }
}

/**
 * Where br_netfilter is loaded (Docker loads it; it is on by default in every namespace), frames
 * a bridge forwards also pass the IP firewall and NAT: a router's hairpin DNAT to another LAN
 * host then turns into an L2 forward between the two LAN ports, which client isolation drops
 * (measured). Home routers do not do that: their bridges stay layer 2. (Only routers: the
 * internet core has no firewall, and with its bridge switched too, trafgen's TX ring in the relay
 * forwarding benchmark failed with EAGAIN, measured.)
 */
async function bridgesStayLayer2(ns: string): Promise<void> {
  if (!existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')) return;
  await sysctl(ns, { 'net.bridge.bridge-nf-call-iptables': 0, 'net.bridge.bridge-nf-call-ip6tables': 0, 'net.bridge.bridge-nf-call-arptables': 0 });
}

/** `ip addr add` lines for a segment owner's gateway addresses on `dev`. */
function gatewayAddresses(seg: SegmentPlan, dev: string): string[] {
  return seg.subnets.map((s) => `addr add ${s.gateway}/${s.subnet.prefix} dev ${dev}${s.subnet.family === 6 ? ' nodad' : ''}`);
}

/**
 * IPv6 in a namespace, without duplicate address detection: the lab assigns every address itself,
 * and DAD would keep each new address tentative (unusable for binding) for about a second.
 */
const IPV6_ON = {
  'net.ipv6.conf.all.disable_ipv6': 0,
  'net.ipv6.conf.default.disable_ipv6': 0,
  'net.ipv6.conf.all.accept_dad': 0,
  'net.ipv6.conf.default.accept_dad': 0,
} as const;

/**
 * A segment's bridge. With IPv6 its multicast snooping is off: neighbour discovery goes to
 * solicited-node multicast groups, and a snooping bridge forwards those only to ports whose MLD
 * reports it saw, which it may not have (reports sent before the port joined the bridge).
 */
function bridgeLine(name: string, ipv6: boolean): string {
  return `link add ${name} type bridge${ipv6 ? ' mcast_snooping 0' : ''}`;
}

function parseAddress(text: string, seg: SegmentPlan): IpAddress {
  const ip = IpAddress.tryParse(text);
  const sub = ip && subnetOf(seg, ip.family);
  if (!ip || !sub || !sub.subnet.isUsableHost(ip)) {
    throw new Error(`address ${text} is not a usable address of ${seg.name} (${seg.subnets.map((s) => s.subnet).join(', ')})`);
  }
  return ip;
}

/**
 * Tears down every lab this process brought up when it is interrupted or crashes, then exits.
 * Call once in any process that creates labs (the CLI, test files, benchmarks).
 */
let teardown: Promise<void> | undefined;

export function teardownOnExit(): void {
  const handler = (code: number) => {
    if (teardown) return;
    teardown = Promise.allSettled([...active].map((l) => l.down())).then(() => process.exit(code));
  };
  // `on`, not `once`: a second signal must not cut the teardown short. node --test sends its test
  // files' processes a SIGTERM of its own after the one the process group got; with `once` that
  // second one killed a NAT-matrix run mid-teardown and left 24 namespaces and their daemons.
  process.on('SIGINT', () => handler(130));
  process.on('SIGTERM', () => handler(143));
  process.on('SIGHUP', () => handler(129));
}

/** While an interrupt tears labs down, work that fails because its namespaces vanished should wait for this, not exit. */
export function pendingTeardown(): Promise<void> | undefined {
  return teardown;
}


/** Every lab namespace starts with this, so leftovers of a crashed run can be found without its record. */
export const LAB_NS_PREFIX = 'wgl-';

export function labNamespace(lab: string, node: string): string {
  return `${LAB_NS_PREFIX}${lab}-${node}`;
}

/** Names of labs that have a record or left namespaces behind. */
export async function knownLabs(): Promise<string[]> {
  const fromNs = (await listNamespaces()).filter((n) => n.startsWith(LAB_NS_PREFIX)).map((n) => n.slice(LAB_NS_PREFIX.length).split('-')[0]);
  return [...new Set([...(await listStates()), ...fromNs])].sort();
}
