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

/**
 * `ip -j addr show scope global`, as iproute2 6.1 prints it: an address its scope filter hides
 * still leaves an empty `{}` in addr_info (a WireGuard interface with an IPv6 tunnel address
 * does), so every field is optional and entries without an address are skipped. Rejecting the
 * whole output for one of those made the agent report no interfaces at all.
 */
const ipAddrJson = z.array(
  z
    .object({
      ifname: z.string(),
      addr_info: z
        .array(z.object({ family: z.string().optional(), local: z.string().optional(), prefixlen: z.number().optional(), scope: z.string().optional(), temporary: z.boolean().optional(), deprecated: z.boolean().optional() }).passthrough())
        .optional(),
    })
    .passthrough(),
);

/** This machine's global addresses of both families from `ip -j addr` output, sorted; `exclude` is the WireGuard interface. */
export function globalInterfaces(json: string, exclude: string): Prefixed[] {
  let raw: unknown;
  try {
    raw = JSON.parse(json || '[]');
  } catch {
    return [];
  }
  const parsed = ipAddrJson.safeParse(raw);
  if (!parsed.success) return [];
  const out: Prefixed[] = [];
  for (const link of parsed.data) {
    if (link.ifname === exclude) continue;
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
    return r.code === 0 ? globalInterfaces(r.stdout, this.exclude) : [];
  }
}
