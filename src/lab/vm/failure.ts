/**
 * Why a guest run failed, said so that the reader knows the cause and the fix. The mapping from
 * what was observed (QEMU's stderr, the kernel's console, which marker was seen) to a message is
 * pure, so it is tested without booting anything.
 */

export type VmFailure =
  | 'no-qemu'
  | 'no-kvm'
  | 'kernel-package'
  | 'image'
  | 'no-wireguard'
  | 'qemu-error'
  | 'kernel-panic'
  | 'boot-timeout'
  | 'hang'
  | 'guest-lost'
  | 'interrupted';

export class VmError extends Error {
  override name = 'VmError';
  /** What the CLI exits with: 128 + the signal's number when interrupted, else 1. */
  exitCode = 1;
  constructor(
    readonly kind: VmFailure,
    readonly cause_: string,
    readonly fix: string,
  ) {
    super(`${cause_}; ${fix}`);
  }
}

export interface GuestObservation {
  /** How far the guest got: QEMU started, /init said it is ready, the command finished. */
  phase: 'booting' | 'running';
  /** Why we stopped watching: QEMU exited by itself, or a deadline passed and we killed it. */
  ended: { by: 'exit'; code: number | null; signal: string | null } | { by: 'timeout'; afterMs: number } | { by: 'signal'; signal: string };
  qemuStderr: string;
  /** The kernel console (ttyS0), whole or its end. */
  console: string;
  /** A failure /init reported itself before running the command ("wireguard", …), with its detail. */
  guestFailure?: { what: string; detail: string };
}

const lastLines = (text: string, n: number) =>
  text
    .replace(/\r/g, '')
    .split('\n')
    .map((l) => l.trimEnd())
    .filter(Boolean)
    .slice(-n);

/** The line that says why a kernel stopped, if it panicked. */
export function panicLine(console: string): string | undefined {
  return /Kernel panic - not syncing: ([^\n\r]*)/.exec(console)?.[1]?.trim();
}

export function classify(o: GuestObservation, limits: { bootTimeoutS: number; timeoutS: number }): VmError {
  if (o.ended.by === 'signal') {
    const e = new VmError('interrupted', `interrupted by ${o.ended.signal}; the guest was stopped`, 'nothing was left behind');
    e.exitCode = 128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as Record<string, number>)[o.ended.signal]!;
    return e;
  }
  if (o.guestFailure?.what === 'wireguard') {
    return new VmError('no-wireguard', `the guest's kernel has no WireGuard module (modprobe wireguard: ${o.guestFailure.detail || 'failed'})`, 'boot a kernel built with CONFIG_WIREGUARD (Debian\'s cloud kernels since 5.6 have it): remove the cached kernel and image, or point --kernel-package at another linux-image package');
  }
  if (o.guestFailure) return new VmError('image', `/init in the guest failed at "${o.guestFailure.what}": ${o.guestFailure.detail}`, 'rebuild the image with --rebuild (or remove its cache directory)');
  const qemuLines = lastLines(o.qemuStderr, 3).filter((l) => !/terminating on signal/.test(l));
  const panic = panicLine(o.console);
  const tail = lastLines(o.console, 3).join(' | ') || '(the kernel printed nothing)';
  if (o.ended.by === 'timeout') {
    if (o.phase === 'booting') {
      return new VmError('boot-timeout', `the guest did not start the command within ${limits.bootTimeoutS} s and was killed (last console lines: ${tail})`, 'the kernel or image does not boot here: run again with --rebuild, or under TCG on a busy machine raise --boot-timeout');
    }
    return new VmError('hang', `the command was still running inside the guest after ${limits.timeoutS} s and was killed`, 'raise --timeout if it is only slow (TCG is 10-20x slower than the host), or find what waits forever (a test without a deadline)');
  }
  if (panic) {
    return new VmError('kernel-panic', `the guest's kernel panicked ${o.phase === 'booting' ? 'while booting' : 'while the command ran'}: ${panic}`, o.phase === 'booting' ? 'the image is broken or does not fit this kernel: run again with --rebuild' : 'give the guest more memory (--memory) if it ran out, else see the console lines: ' + tail);
  }
  if (qemuLines.length) {
    const kvm = qemuLines.some((l) => /kvm|KVM|MSR|emulation failure/.test(l));
    return new VmError('qemu-error', `QEMU stopped: ${qemuLines.join(' | ')}`, kvm ? 'KVM does not work on this machine: run with --accel tcg' : 'check the QEMU command line (run with WGP2P_VM_DEBUG=1 to print it) and that qemu-system-x86 is installed (scripts/install-vm.sh)');
  }
  return new VmError('guest-lost', `the guest stopped ${o.phase === 'booting' ? 'before it started the command' : 'before the command finished'} (last console lines: ${tail})`, 'run again with --rebuild; if it repeats, give the guest more memory (--memory)');
}
