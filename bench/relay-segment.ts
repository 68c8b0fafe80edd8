/**
 * One switched segment of namespaces, for relay benchmarks that need IPv6 while the lab's
 * topologies are IPv4 only: a bridge in a namespace of its own (as the lab's internet core: no
 * firewall) and hosts on it, each with eth0 holding its addresses of either family. It offers the
 * few Lab methods the relay benchmarks use (ns, exec, spawn, logDir, down) under the same
 * meanings. IPv6 addresses are added without DAD (a tentative address cannot be bound, and nobody
 * else is on the segment) and router advertisements are ignored. down() deletes every namespace
 * (which stops what runs in it), also when called from a signal handler.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type RunOptions, type RunResult } from '../src/core/exec.js';
import { IpAddress } from '../src/core/net/address.js';
import { spawnDaemon } from '../src/lab/daemon.js';
import { addNamespace, deleteNamespace, sysctl } from '../src/lab/netns.js';

export interface SegmentHost {
  name: string;
  /** With prefix: "198.51.100.1/24", "2001:db8:5::1/64". A host with no IPv4 one has IPv4 only on lo; with no IPv6 one, IPv6 is off. */
  addresses: string[];
}

const live = new Set<Segment>();
let handlers = false;

export class Segment {
  readonly logDir: string;
  private downing?: Promise<void>;

  private constructor(
    readonly name: string,
    private readonly hosts: readonly string[],
  ) {
    this.logDir = mkdtempSync(join(tmpdir(), `wgp2p-${name}-`));
  }

  static async up(name: string, hosts: SegmentHost[]): Promise<Segment> {
    if (!handlers) {
      handlers = true;
      for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
        process.on(sig, () => void Promise.allSettled([...live].map((s) => s.down())).finally(() => process.exit(code)));
      }
    }
    const seg = new Segment(name, hosts.map((h) => h.name));
    live.add(seg);
    try {
      await addNamespace(seg.ns('sw'));
      await run('ip', ['-n', seg.ns('sw'), '-batch', '-'], { input: 'link add br0 type bridge\nlink set br0 up\n' });
      for (const h of hosts) {
        const ns = seg.ns(h.name);
        await addNamespace(ns);
        await run('ip', ['-n', seg.ns('sw'), 'link', 'add', h.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
        await run('ip', ['-n', seg.ns('sw'), '-batch', '-'], { input: `link set ${h.name} master br0\nlink set ${h.name} up\n` });
        const v6 = h.addresses.some((a) => IpAddress.parse(a.split('/')[0]).family === 6);
        await sysctl(ns, v6 ? { 'net.ipv6.conf.all.accept_ra': 0, 'net.ipv6.conf.default.accept_ra': 0, 'net.ipv4.conf.all.rp_filter': 0 } : { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv4.conf.all.rp_filter': 0 });
        const lines = h.addresses.map((a) => `addr add ${a} dev eth0${a.includes(':') ? ' nodad' : ''}`);
        await run('ip', ['-n', ns, '-batch', '-'], { input: ['link set eth0 up', ...lines].join('\n') + '\n' });
      }
    } catch (err) {
      await seg.down();
      throw err;
    }
    return seg;
  }

  ns(host: string): string {
    return `wgs-${this.name}-${host}`;
  }

  exec(host: string, cmd: string, args: readonly string[] = [], opts: Omit<RunOptions, 'netns'> = {}): Promise<RunResult> {
    return run(cmd, args, { ...opts, netns: this.ns(host) });
  }

  /** A long-lived process in `host`, logging to LOGDIR/HOST.WHAT.log (as Lab.spawn does). */
  spawn(host: string, what: string, cmd: string, args: string[]): number {
    return spawnDaemon(this.ns(host), cmd, args, join(this.logDir, `${host}.${what}.log`));
  }

  down(): Promise<void> {
    this.downing ??= (async () => {
      for (const h of [...this.hosts, 'sw']) await deleteNamespace(this.ns(h));
      live.delete(this);
    })();
    return this.downing;
  }
}
