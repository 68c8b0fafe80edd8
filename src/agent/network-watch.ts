import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { run } from '../core/exec.js';

/**
 * Notices that this machine changed network: the set of global IPv4 addresses (outside the
 * WireGuard interface) changed. Driven by `ip monitor` events, so it reacts within milliseconds
 * instead of waiting for a keepalive to fail; bursts of events are debounced.
 */
export class NetworkWatch {
  private child?: ChildProcess;
  private timer?: NodeJS.Timeout;
  private current = '';

  constructor(
    private readonly exclude: string,
    private readonly onChange: (addresses: string[]) => void,
    private readonly debounceMs = 100,
  ) {}

  async start(): Promise<void> {
    this.current = (await this.addresses()).join(',');
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
    const now = await this.addresses();
    const key = now.join(',');
    if (key === this.current) return;
    this.current = key;
    this.onChange(now);
  }

  async addresses(): Promise<string[]> {
    const r = await run('ip', ['-j', '-4', 'addr', 'show', 'scope', 'global'], { allowFail: true });
    if (r.code !== 0) return [];
    const links = JSON.parse(r.stdout || '[]') as { ifname: string; addr_info?: { local: string; prefixlen: number }[] }[];
    return links
      .filter((l) => l.ifname !== this.exclude)
      .flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`))
      .sort();
  }
}
