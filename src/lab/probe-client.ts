import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const PROBE = fileURLToPath(new URL('./probe.js', import.meta.url));

/** What a serving probe writes back (probe.ts, serve()). */
const replySchema = z.object({ id: z.string().nullable(), out: z.unknown().optional(), end: z.literal(true).optional(), error: z.string().optional() });

interface Pending {
  lines: unknown[];
  onLine?: (v: unknown) => void;
  done: (r: { lines: unknown[]; error?: string }) => void;
}

/**
 * One `probe.js serve` process per lab host, started on first use: every probe a row runs on
 * that host is a request to it instead of a process of its own (a node start costs seconds in a
 * TCG guest). Closing ends them all.
 */
export class ProbeClients {
  private readonly hosts = new Map<string, { child: ChildProcess; pending: Map<string, Pending> }>();
  private next = 0;

  constructor(private readonly nsOf: (host: string) => string) {}

  private host(host: string) {
    const known = this.hosts.get(host);
    if (known) return known;
    const child = spawn('ip', ['netns', 'exec', this.nsOf(host), process.execPath, PROBE, 'serve'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const pending = new Map<string, Pending>();
    const entry = { child, pending };
    this.hosts.set(host, entry);
    child.stdin!.on('error', () => undefined);
    createInterface({ input: child.stdout! }).on('line', (text) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return;
      }
      const r = replySchema.safeParse(parsed);
      if (!r.success || r.data.id === null) return;
      const p = pending.get(r.data.id);
      if (!p) return;
      if ('out' in r.data) {
        p.lines.push(r.data.out);
        p.onLine?.(r.data.out);
      }
      if (r.data.end) {
        pending.delete(r.data.id);
        p.done({ lines: p.lines, error: r.data.error });
      }
    });
    child.on('close', (code, signal) => {
      for (const p of pending.values()) p.done({ lines: p.lines, error: `the probe on ${host} exited (${signal ?? code})` });
      pending.clear();
      this.hosts.delete(host);
    });
    return entry;
  }

  /**
   * Runs `args` (a mode and its options) on `host`. Resolves with the lines it printed once it
   * ended; `onLine` sees each as it comes; `stop()` is a listener's --stdin signal.
   */
  request(host: string, args: readonly string[], opts: { timeoutMs: number; onLine?: (v: unknown) => void }): { result: Promise<unknown[]>; stop: () => void } {
    const h = this.host(host);
    const id = `r${this.next++}`;
    const send = (v: unknown) => h.child.stdin!.write(JSON.stringify(v) + '\n');
    const result = new Promise<unknown[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        h.pending.delete(id);
        reject(new Error(`probe ${args.join(' ')} on ${host} did not answer within ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      h.pending.set(id, {
        lines: [],
        onLine: opts.onLine,
        done: (r) => {
          clearTimeout(timer);
          if (r.error) reject(new Error(`probe ${args.join(' ')} on ${host}: ${r.error}`));
          else resolve(r.lines);
        },
      });
      send({ id, args });
    });
    return { result, stop: () => void send({ id, stop: true }) };
  }

  /** Ends every serving probe (their stdin closes; SIGKILL for one that does not go). */
  async close(): Promise<void> {
    await Promise.all(
      [...this.hosts.values()].map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), 2000);
            child.once('close', () => (clearTimeout(kill), resolve()));
            child.stdin!.end();
          }),
      ),
    );
  }
}
