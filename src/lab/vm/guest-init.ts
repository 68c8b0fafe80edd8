import { BOOT_MODULES } from './config.js';

/**
 * The guest's side of a run, as text: /init (in the cached image) and the per-run files it reads
 * (the command, its environment, the run's nonce). /init reports on the output console with
 * marker lines that start with an ASCII record separator and the nonce, so that nothing the
 * command prints can be taken for one.
 */

export const MARKER_PREFIX = '\x1e@@wgp2p-vm ';
/** Where the per-run archive puts its files in the guest. */
export const RUN_DIR = '/wgp2p-run';

export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** The scale lab deadlines get when the guest cannot time itself (what TCG needed on a quiet machine). */
export const FALLBACK_SCALE = 10;

/**
 * The command, in its directory. With `scaleProbe` (guest-scale.js), the time scale is measured
 * first, unless the caller's environment already has one.
 */
export function commandScript(argv: readonly string[], cwd: string, scaleProbe?: string): string {
  if (argv.length === 0) throw new Error('no command to run in the guest (give it after --)');
  const probe = scaleProbe
    ? `if [ -z "\${WGP2P_LAB_TIME_SCALE:-}" ]; then\n  scales=$(node ${shQuote(scaleProbe)}) || scales='${FALLBACK_SCALE} ${FALLBACK_SCALE}'\n  export WGP2P_LAB_TIME_SCALE="\${scales% *}" WGP2P_LAB_WINDOW_SCALE="\${scales#* }"\nfi\n`
    : '';
  return `cd ${shQuote(cwd)} || exit 126\n${probe}exec ${argv.map(shQuote).join(' ')}\n`;
}

export function envScript(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => {
      if (!ENV_NAME.test(k)) throw new Error(`environment variable name "${k}" is not a shell name (letters, digits, _)`);
      return `export ${k}=${shQuote(v)}\n`;
    })
    .join('');
}

/**
 * /init. The merged-/usr symlinks are in the image; /dev/fd is made here (wg-quick feeds
 * `wg setconf` through /dev/fd/63). Both consoles are put in raw mode: a tty's default output
 * processing turns every "\n" into "\r\n".
 */
export function initScript(): string {
  return `#!/bin/bash
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
poweroff() { sync; echo o >/proc/sysrq-trigger; sleep 30; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run /tmp /var/tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
# No tmpfs over /tmp: the initramfs is already RAM, and a checkout under /tmp (a CI clone) is
# unpacked there; a mount would hide it ("cd: /tmp/ci-clone: No such file or directory").
chmod 1777 /tmp /var/tmp
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
echo wgp2p-vm >/proc/sys/kernel/hostname
ip link set lo up
for m in virtio_pci virtio_console virtio_rng; do modprobe -q $m; done
for i in $(seq 1 200); do [ -c /dev/hvc0 ] && [ -c /dev/hvc1 ] && break; sleep 0.05; done
[ -c /dev/hvc0 ] || { echo "wgp2p-vm: no output console /dev/hvc0 (virtio_console)" >/dev/console; poweroff; }
exec </dev/null >/dev/hvc0 2>/dev/hvc1
# Only now: hvc resets a console's settings when its last opener closes it.
stty -F /dev/hvc0 raw -echo 2>/dev/null
stty -F /dev/hvc1 raw -echo 2>/dev/null
NONCE=$(cat ${RUN_DIR}/nonce)
marker() { printf '\\036@@wgp2p-vm %s %s\\n' "$NONCE" "$*" >/dev/hvc0; }
for m in ${BOOT_MODULES.filter((m) => !m.startsWith('virtio')).join(' ')}; do
  out=$(modprobe $m 2>&1) || { marker "fail $m \${out//$'\\n'/ }"; poweroff; }
done
. ${RUN_DIR}/env.sh
marker ready
/bin/bash ${RUN_DIR}/command.sh
marker "exit $?"
poweroff
`;
}

export type Marker = { kind: 'ready' } | { kind: 'exit'; code: number } | { kind: 'fail'; what: string; detail: string };

/** One marker line (without the prefix and nonce), or undefined when it is not one /init writes. */
export function parseMarker(rest: string): Marker | undefined {
  if (rest === 'ready') return { kind: 'ready' };
  const exit = /^exit (\d{1,3})$/.exec(rest);
  if (exit) return { kind: 'exit', code: Number(exit[1]) };
  const fail = /^fail (\S+) ?(.*)$/.exec(rest);
  if (fail) return { kind: 'fail', what: fail[1], detail: fail[2] };
  return undefined;
}

/**
 * Splits the output console's stream into the command's output and /init's markers. Text is
 * passed on as soon as it cannot be the start of a marker; a marker is taken whole.
 */
export class MarkerStream {
  private held = '';
  constructor(
    private readonly nonce: string,
    private readonly out: (text: string) => void,
    private readonly onMarker: (m: Marker) => void,
  ) {}

  push(chunk: string): void {
    let text = this.held + chunk;
    this.held = '';
    const head = `${MARKER_PREFIX}${this.nonce} `;
    for (;;) {
      const at = text.indexOf('\x1e');
      if (at < 0) break;
      if (at > 0) this.out(text.slice(0, at));
      text = text.slice(at);
      const nl = text.indexOf('\n');
      if (nl < 0) {
        // Could still become a marker: hold it, unless it already differs from one (or is long).
        if (head.startsWith(text.slice(0, head.length)) && text.length < 4096) this.held = text;
        else this.out(text);
        return;
      }
      const line = text.slice(0, nl).replace(/\r$/, '');
      const m = line.startsWith(head) ? parseMarker(line.slice(head.length)) : undefined;
      if (m) this.onMarker(m);
      else this.out(text.slice(0, nl + 1));
      text = text.slice(nl + 1);
    }
    if (text) this.out(text);
  }

  /** Whatever was held back when the stream ends. */
  end(): void {
    if (this.held) this.out(this.held);
    this.held = '';
  }
}
