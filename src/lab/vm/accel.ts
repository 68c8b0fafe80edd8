import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { VmError } from './failure.js';
import { qemuArgs, type Accel } from './qemu-args.js';

export type AccelChoice = 'auto' | Accel;

export interface AccelDecision {
  accel: Accel;
  /** Said to the user: why this one. */
  why: string;
}

/** Why KVM cannot be tried at all, or undefined when /dev/kvm is there and ours to open. */
export function kvmDeviceProblem(path = '/dev/kvm'): string | undefined {
  if (!existsSync(path)) return `${path} is missing (no kvm module, or no hardware virtualisation)`;
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
  } catch {
    return `${path} is not readable and writable by this user`;
  }
  return undefined;
}

/**
 * What a probe boot tells about KVM: a kernel booted without a root file system ends in a known
 * panic ("VFS: Unable to mount root fs"), which it reaches only if KVM ran it. Nested KVM here
 * failed in three ways: QEMU aborting on an MSR, an "emulation failure" in the decompressor, and
 * a silent hang; all of them say no.
 */
export function judgeKvmProbe(console: string, qemuStderr: string, timedOut: boolean): { works: boolean; detail: string } {
  if (/VFS: Unable to mount root|Kernel panic - not syncing: VFS/.test(console)) return { works: true, detail: 'a probe boot reached the kernel proper' };
  const err = qemuStderr.split('\n').map((l) => l.trim()).find((l) => /error|failure|failed|Assertion/i.test(l));
  if (err) return { works: false, detail: err.replace(/^qemu-system-x86_64:\s*/, '') };
  return { works: false, detail: timedOut ? 'a probe boot made no progress in time' : 'a probe boot stopped early' };
}

const probeRecord = z.object({ key: z.string(), works: z.boolean(), detail: z.string() });

/** The probe's result holds for this QEMU, host kernel, CPU and guest kernel. */
export function probeKey(qemuVersion: string, hostKernel: string, cpuModel: string, guestKernel: string): string {
  return createHash('sha256').update([qemuVersion, hostKernel, cpuModel, guestKernel].join('\n')).digest('hex').slice(0, 16);
}

const PROBE_TIMEOUT_MS = 15_000;

async function probeKvm(qemu: string, vmlinuz: string): Promise<{ works: boolean; detail: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'wgp2p-vm-kvm-'));
  try {
    const log = join(dir, 'console.log');
    const args = qemuArgs({ accel: 'kvm', kernel: vmlinuz, memoryMb: 256, cpus: 1, consoleLog: log });
    const child = spawn(qemu, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d.slice(0, 4096)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, PROBE_TIMEOUT_MS);
    await new Promise<void>((r) => child.on('close', () => r()));
    clearTimeout(timer);
    return judgeKvmProbe(existsSync(log) ? await readFile(log, 'utf8') : '', stderr, timedOut);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function cpuModel(): string {
  try {
    return /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * KVM when asked for or when a quick probe boot shows it works here (the answer is cached per
 * machine and kernel), TCG otherwise.
 */
export async function chooseAccel(want: AccelChoice, opts: { qemu: string; qemuVersion: string; vmlinuz: string; guestKernel: string; cache: string }): Promise<AccelDecision> {
  if (want === 'tcg') return { accel: 'tcg', why: 'asked for (--accel tcg)' };
  const problem = kvmDeviceProblem();
  if (problem) {
    if (want === 'kvm') throw new VmError('no-kvm', `KVM was asked for, but ${problem}`, 'load kvm_intel or kvm_amd, enable virtualisation (nested virtualisation on a cloud VM), or run with --accel tcg (slower, always works)');
    return { accel: 'tcg', why: `KVM unavailable: ${problem}` };
  }
  const key = probeKey(opts.qemuVersion, release(), cpuModel(), opts.guestKernel);
  const file = join(opts.cache, 'kvm-probe.json');
  let rec = existsSync(file) ? probeRecord.safeParse(JSON.parse(await readFile(file, 'utf8').catch(() => '{}'))).data : undefined;
  if (!rec || rec.key !== key) {
    const r = await probeKvm(opts.qemu, opts.vmlinuz);
    rec = { key, ...r };
    await writeFile(file, JSON.stringify(rec) + '\n').catch(() => undefined);
  }
  if (rec.works) return { accel: 'kvm', why: `KVM works here (${rec.detail})` };
  if (want === 'kvm') throw new VmError('no-kvm', `KVM was asked for, but it does not run a guest on this machine: ${rec.detail}`, 'run with --accel tcg (or let --accel auto choose)');
  return { accel: 'tcg', why: `KVM does not work here (${rec.detail}; checked once, cached in ${file})` };
}
