import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { run } from '../../core/exec.js';
import { findTool } from '../preflight.js';
import { chooseAccel, type AccelChoice } from './accel.js';
import { checkoutRoot, writeRunArchives } from './checkout.js';
import { cacheDir, KERNEL_META_PACKAGE } from './config.js';
import { classify, VmError, type GuestObservation } from './failure.js';
import { FALLBACK_SCALE, MarkerStream, type Marker } from './guest-init.js';
import { baseImage } from './image.js';
import { configHasWireGuard, fetchKernel, resolveKernel } from './kernel.js';
import { qemuArgs, type Accel } from './qemu-args.js';
import { startTimesToEnv, type StartTimes } from './scale.js';
import { measureStartTimes } from './start-times.js';

export interface VmRunOptions {
  argv: readonly string[];
  accel?: AccelChoice;
  memoryMb?: number;
  cpus?: number;
  /** Seconds from QEMU's start until /init says it is ready. */
  bootTimeoutS?: number;
  /** Seconds the command may run in the guest. */
  timeoutS?: number;
  rebuild?: boolean;
  /** Extra environment for the command (the guest starts from an empty one). */
  env?: Record<string, string>;
  kernelPackage?: string;
  /** Progress lines (to stderr by the CLI). */
  log?: (m: string) => void;
  stdout?: (text: string) => void;
  stderr?: (chunk: Buffer) => void;
}

export interface VmRunResult {
  code: number;
  accel: Accel;
  bootMs: number;
  runMs: number;
}

const RUN_PREFIX = 'wgp2p-vm-run-';
/** This checkout's guest-scale.js: the guest has the checkout at the same path. */
const GUEST_SCALE_PROBE = fileURLToPath(new URL('./guest-scale.js', import.meta.url));

/**
 * The guest's environment: the data plane is the kernel's, and the host's WGP2P_* settings go
 * along. WGP2P_LAB_TIME_SCALE only when the caller set it: otherwise the guest measures it
 * against the host's start times (scale.ts).
 */
export function guestEnv(host: NodeJS.ProcessEnv, extra: Record<string, string> = {}, hostStarts?: StartTimes): Record<string, string> {
  const env: Record<string, string> = { WGP2P_DATA_PLANE: 'kernel' };
  if (hostStarts) Object.assign(env, startTimesToEnv(hostStarts));
  else env.WGP2P_LAB_TIME_SCALE = String(FALLBACK_SCALE);
  for (const [k, v] of Object.entries(host)) if (k.startsWith('WGP2P_') && !k.startsWith('WGP2P_VM_') && v !== undefined) env[k] = v;
  return { ...env, ...extra };
}

/** Run directories whose process is gone (killed with SIGKILL before it could clean up). */
async function removeStaleRuns(): Promise<void> {
  for (const d of await readdir(tmpdir()).catch(() => [] as string[])) {
    const pid = Number(/^wgp2p-vm-run-(\d+)-/.exec(d)?.[1]);
    if (pid && pid !== process.pid && !existsSync(`/proc/${pid}`)) await rm(join(tmpdir(), d), { recursive: true, force: true });
  }
}

async function concat(parts: readonly string[], out: string): Promise<void> {
  const w = createWriteStream(out);
  for (const p of parts) await pipeline(createReadStream(p), w, { end: false });
  await new Promise<void>((res, rej) => w.end((err?: Error | null) => (err ? rej(err) : res())));
}

/**
 * Boots Debian's kernel with the cached image plus this checkout, runs `argv` inside at the same
 * path, streams its output, and returns its exit code. Everything it made is gone when it
 * returns or throws, and on SIGINT/SIGTERM/SIGHUP: QEMU dies with this process (its parent-death
 * signal), the run directory is removed.
 */
export async function runInVm(o: VmRunOptions): Promise<VmRunResult> {
  return bootGuest(await prepareVm(o), o);
}

/** What every guest of a run shares: the tools, the kernel, the cached image, the accelerator, the host's start times. */
export interface PreparedVm {
  qemu: string;
  cache: string;
  kernel: Awaited<ReturnType<typeof fetchKernel>>;
  base: Awaited<ReturnType<typeof baseImage>>;
  decision: Awaited<ReturnType<typeof chooseAccel>>;
  hostStarts?: StartTimes;
}

/**
 * Everything before a boot, done once however many guests run: the image build and the KVM
 * probe write the cache, and the host's start times are the baseline every guest's scale is
 * measured against (timed before any guest loads the machine).
 */
export async function prepareVm(o: VmRunOptions): Promise<PreparedVm> {
  const log = o.log ?? (() => undefined);
  const qemu = findTool('qemu-system-x86_64');
  const missing = [['qemu-system-x86_64', qemu], ['cpio', findTool('cpio')], ['depmod', findTool('depmod')], ['setpriv', findTool('setpriv')]].filter(([, p]) => !p).map(([t]) => t);
  if (!qemu || missing.length) throw new VmError('no-qemu', `missing ${missing.join(', ')}`, 'run scripts/install-vm.sh (it installs qemu-system-x86, cpio and kmod)');
  const cache = cacheDir();
  await mkdir(cache, { recursive: true });

  // Timed before anything heavy of ours runs: the guest compares its own starts with these.
  const callerScale = o.env?.WGP2P_LAB_TIME_SCALE ?? process.env.WGP2P_LAB_TIME_SCALE;
  const hostStarts = callerScale !== undefined ? undefined : await measureStartTimes(3).catch((err: Error) => void log(`cannot time process starts here (${err.message}): the time scale falls back to ${FALLBACK_SCALE}`));
  if (hostStarts) log(`host start times: node -e 0 ${hostStarts.nodeMs} ms, wgp2p hub --help ${hostStarts.cliMs} ms, a JS loop ${hostStarts.loopMs.toFixed(1)} ms (the guest times the same to set the lab's time scales)`);
  const kernel = await fetchKernel(cache, await resolveKernel(o.kernelPackage ?? KERNEL_META_PACKAGE), log);
  if (!configHasWireGuard(await readFile(kernel.config, 'utf8').catch(() => ''))) {
    throw new VmError('no-wireguard', `${kernel.package} ${kernel.version} is built without WireGuard (no CONFIG_WIREGUARD in its config)`, 'use a kernel package that has it (--kernel-package; Debian\'s since 5.6 do)');
  }
  const base = await baseImage(cache, kernel, { rebuild: o.rebuild, log });
  const qemuVersion = (await run(qemu, ['--version'])).stdout.split('\n')[0];
  const decision = await chooseAccel(o.accel ?? 'auto', { qemu, qemuVersion, vmlinuz: kernel.vmlinuz, guestKernel: `${kernel.package} ${kernel.version}`, cache });
  log(`accel ${decision.accel}: ${decision.why}`);
  return { qemu, cache, kernel, base, decision, hostStarts };
}

/** One guest: boots it, runs `o.argv`, tears it down. `consoleName` names the kernel console kept in the cache. */
export async function bootGuest(p: PreparedVm, o: VmRunOptions, consoleName = 'last-console.log'): Promise<VmRunResult> {
  const log = o.log ?? (() => undefined);
  const { qemu, cache, kernel, base, decision, hostStarts } = p;
  const bootTimeoutS = o.bootTimeoutS ?? 180;
  const timeoutS = o.timeoutS ?? 3600;
  await removeStaleRuns();
  const runDir = await mkdtemp(join(tmpdir(), `${RUN_PREFIX}${process.pid}-`));
  let child: ChildProcess | undefined;
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (s: NodeJS.Signals) => {
    interrupted = s;
    child?.kill('SIGKILL');
  };
  signals.forEach((s) => process.on(s, onSignal));
  try {
    const nonce = randomBytes(12).toString('hex');
    const root = checkoutRoot();
    const cwd = process.cwd().startsWith(root) ? process.cwd() : root;
    const archives = await writeRunArchives(runDir, { nonce, argv: o.argv, cwd, env: guestEnv(process.env, o.env, hostStarts), scaleProbe: hostStarts ? GUEST_SCALE_PROBE : undefined }, root);
    const initrd = join(runDir, 'initrd.cpio');
    await concat([base.path, ...archives], initrd);
    await Promise.all(archives.map((a) => rm(a)));
    await rm(join(runDir, 'stage'), { recursive: true, force: true });

    const consoleLog = join(runDir, 'console.log');
    const args = qemuArgs({ accel: decision.accel, kernel: kernel.vmlinuz, initrd, memoryMb: o.memoryMb ?? 3072, cpus: o.cpus ?? 2, consoleLog, stderrSocket: join(runDir, 'stderr.sock'), append: process.env.WGP2P_VM_DEBUG ? ['loglevel=7'] : [], tcgCpu: process.env.WGP2P_VM_CPU });
    if (process.env.WGP2P_VM_DEBUG) log(`qemu ${args.join(' ')}`);
    if (interrupted) throw classify({ phase: 'booting', ended: { by: 'signal', signal: interrupted }, qemuStderr: '', console: '' }, { bootTimeoutS, timeoutS });

    const t0 = performance.now();
    let ready = 0;
    let exitCode: number | undefined;
    let guestFailure: GuestObservation['guestFailure'];
    let timedOut: number | undefined;
    let qemuStderr = '';
    // setpriv --pdeathsig: QEMU is killed by the kernel if this process dies, even by SIGKILL.
    const errOut = o.stderr ?? ((b: Buffer) => process.stderr.write(b));
    const errServer = createServer((sock) => sock.on('data', errOut).on('error', () => undefined));
    await new Promise<void>((res, rej) => errServer.once('error', rej).listen(join(runDir, 'stderr.sock'), () => res()));
    const c = spawn('setpriv', ['--pdeathsig', 'KILL', '--', qemu, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    let bootTimer: NodeJS.Timeout | undefined = setTimeout(() => {
      timedOut = bootTimeoutS * 1000;
      c.kill('SIGKILL');
    }, bootTimeoutS * 1000);
    let runTimer: NodeJS.Timeout | undefined;
    const out = o.stdout ?? ((t: string) => process.stdout.write(t));
    const markers = new MarkerStream(nonce, out, (m: Marker) => {
      if (m.kind === 'ready' && !ready) {
        ready = performance.now();
        clearTimeout(bootTimer);
        bootTimer = undefined;
        log(`guest ready after ${((ready - t0) / 1000).toFixed(1)} s (${kernel.release}, ${decision.accel}); running: ${o.argv.join(' ')}`);
        runTimer = setTimeout(() => {
          timedOut = timeoutS * 1000;
          c.kill('SIGKILL');
        }, timeoutS * 1000);
      } else if (m.kind === 'exit') exitCode = m.code;
      else if (m.kind === 'fail') guestFailure = { what: m.what, detail: m.detail };
    });
    c.stdout!.setEncoding('utf8').on('data', (d: string) => markers.push(d));
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (qemuStderr = (qemuStderr + d).slice(-8192)));
    const ended = await new Promise<{ code: number | null; signal: string | null }>((res) => c.on('close', (code, signal) => res({ code, signal })));
    clearTimeout(bootTimer);
    clearTimeout(runTimer);
    errServer.close();
    markers.end();
    child = undefined;
    const end = performance.now();
    // The kernel's console of the last run stays in the cache (a few KB): the first thing to read when a guest misbehaves.
    await copyFile(consoleLog, join(cache, consoleName)).catch(() => undefined);
    if (exitCode !== undefined && !interrupted) {
      return { code: exitCode, accel: decision.accel, bootMs: Math.round(ready - t0), runMs: Math.round(end - ready) };
    }
    const consoleText = existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8').slice(-16384) : '';
    throw classify(
      {
        phase: ready ? 'running' : 'booting',
        ended: interrupted ? { by: 'signal', signal: interrupted } : timedOut !== undefined ? { by: 'timeout', afterMs: timedOut } : { by: 'exit', ...ended },
        qemuStderr,
        console: consoleText,
        guestFailure,
      },
      { bootTimeoutS, timeoutS },
    );
  } finally {
    child?.kill('SIGKILL');
    signals.forEach((s) => process.off(s, onSignal));
    await rm(runDir, { recursive: true, force: true });
  }
}
