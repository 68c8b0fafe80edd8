/**
 * QEMU's command line for a guest run, as a pure function of what the run needs.
 *
 * - `-accel tcg,thread=single`: with multi-threaded TCG and two vCPUs the kernel once panicked in
 *   text patching (measured on the prototype); one host thread also leaves the other core to the
 *   rest of the machine. Two vCPUs all the same, because the lab pins processes to CPU 0 and 1.
 * - `-nic none -nodefaults`: the guest has no network beyond the namespaces it makes itself.
 * - The kernel console goes to a file (read when something fails); the command's stdout and
 *   stderr have their own virtio consoles, so that kernel messages never mix into them.
 */

export type Accel = 'kvm' | 'tcg';

export interface QemuPlan {
  accel: Accel;
  kernel: string;
  initrd?: string;
  memoryMb: number;
  cpus: number;
  consoleLog: string;
  /** A unix socket, listened on by the caller, that QEMU connects hvc1 (the command's stderr) to. */
  stderrSocket?: string;
  /** TCG's CPU model (default max); KVM always runs the host's. */
  tcgCpu?: string;
  /** Kernel arguments beyond the fixed ones. */
  append?: readonly string[];
}

/** Kernel arguments every run gets: console on the serial port, power off (no reboot) on panic. */
export const BASE_APPEND = ['console=ttyS0', 'panic=-1', 'oops=panic', 'rdinit=/init', 'mitigations=off', 'random.trust_cpu=on', 'loglevel=4'];

export function qemuArgs(p: QemuPlan): string[] {
  if (!Number.isInteger(p.memoryMb) || p.memoryMb < 256 || p.memoryMb > 65536) throw new Error(`memory must be 256-65536 MiB, not ${p.memoryMb}`);
  if (!Number.isInteger(p.cpus) || p.cpus < 1 || p.cpus > 64) throw new Error(`cpus must be 1-64, not ${p.cpus}`);
  for (const [what, v] of [['kernel', p.kernel], ['initrd', p.initrd], ['console log', p.consoleLog], ['stderr socket', p.stderrSocket]] as const) {
    // QEMU splits -chardev/-serial values at commas; a path with one would be misread.
    if (v !== undefined && /[,\s]/.test(v)) throw new Error(`the ${what} path "${v}" holds a comma or a space, which QEMU's options cannot take`);
  }
  const accel = p.accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=single', '-cpu', p.tcgCpu ?? 'max'];
  const args = [
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    ...accel,
    '-m', String(p.memoryMb), '-smp', String(p.cpus),
    '-kernel', p.kernel,
    ...(p.initrd ? ['-initrd', p.initrd] : []),
    '-append', [...BASE_APPEND, ...(p.append ?? [])].join(' '),
    '-serial', `file:${p.consoleLog}`,
    '-nic', 'none',
    '-device', 'virtio-rng-pci',
  ];
  if (p.stderrSocket) {
    args.push(
      '-device', 'virtio-serial-pci',
      '-chardev', 'stdio,id=out,signal=off',
      '-device', 'virtconsole,chardev=out',
      '-chardev', `socket,id=err,path=${p.stderrSocket}`,
      '-device', 'virtconsole,chardev=err',
    );
  }
  return args;
}
