import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { run } from '../core/exec.js';
import { IpAddress } from '../core/net/address.js';
import { Prefixed } from '../core/net/cidr.js';

/**
 * Notices that this machine changed network: the set of its global addresses of either family
 * (outside the WireGuard interface) changed. Driven by `ip monitor` events, so it reacts within
 * milliseconds instead of waiting for a keepalive to fail; bursts of events are debounced.
 *
 * IPv6 temporary (privacy) addresses are left out: they rotate by themselves every day or so,
 * which is not a network change, and a peer is better told the stable address. Deprecated
 * addresses (preferred lifetime over) are on their way out and left out too.
 */

// `ip -j addr show scope global` prints an empty object for every address its scope filter left
// out (measured with this iproute2: `"addr_info":[{...192.168.5.2...},{}]` for an IPv6 link-local
// address). Requiring the fields made the whole reading fail, so a host with IPv6 on (every real
// one) reported no addresses and never saw a network change.
const ipAddrJson = z.array(
  z.object({
    ifname: z.string(),
    addr_info: z
      .array(z.object({ family: z.string().optional(), local: z.string().optional(), prefixlen: z.number().optional(), scope: z.string().optional(), temporary: z.boolean().optional(), deprecated: z.boolean().optional() }).passthrough())
      .optional(),
  }).passthrough(),
);

export class NetworkWatch {
  private child?: ChildProcess;
  private timer?: NodeJS.Timeout;
  private current = '';

  constructor(
    private readonly exclude: string,
    private readonly onChange: (interfaces: Prefixed[]) => void,
    private readonly debounceMs = 100,
  ) {}

  async start(): Promise<void> {
    this.current = (await this.interfaces()).join(',');
    this.child = spawn('ip', ['-o', 'monitor', 'address', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    createInterface({ input: this.child.stdout! }).on('line', () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.check(), this.debounceMs);
    });
  }

  stop(): void {
    clearTimeout(this.timer);
    this.child?.kill();
  }

  private async check(): Promise<void> {
    const now = await this.interfaces();
    const key = now.join(',');
    if (key === this.current) return;
    this.current = key;
    this.onChange(now);
  }

  /** This machine's global addresses of both families with their prefixes, sorted. */
  async interfaces(): Promise<Prefixed[]> {
    const r = await run('ip', ['-j', 'addr', 'show', 'scope', 'global'], { allowFail: true });
    if (r.code !== 0) return [];
    const parsed = ipAddrJson.safeParse(JSON.parse(r.stdout || '[]'));
    if (!parsed.success) return [];
    const out: Prefixed[] = [];
    for (const link of parsed.data) {
      if (link.ifname === this.exclude) continue;
      for (const a of link.addr_info ?? []) {
        if (a.local === undefined || a.prefixlen === undefined) continue;
        if (a.temporary || a.deprecated || (a.scope !== undefined && a.scope !== 'global')) continue;
        const ip = IpAddress.tryParse(a.local);
        if (!ip || ip.scope() === 'loopback') continue;
        out.push(Prefixed.of(ip, a.prefixlen));
      }
    }
    return out.sort((x, y) => (x.toString() < y.toString() ? -1 : 1));
  }
}
