import { existsSync, readdirSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../../core/exec.js';
import { kernelKey } from './cache-key.js';
import { KERNEL_META_PACKAGE, kernelDir } from './config.js';
import { VmError } from './failure.js';
import { shQuote } from './guest-init.js';

export interface KernelPackage {
  package: string;
  version: string;
}

export interface Kernel extends KernelPackage {
  /** The compressed kernel image QEMU boots. */
  vmlinuz: string;
  /** The extracted package: ROOT/lib/modules/RELEASE, with modules.dep made by depmod. */
  root: string;
  /** `uname -r` of the guest. */
  release: string;
  config: string;
}

/** The versioned kernel package a meta-package depends on, from `apt-cache depends` output. */
export function parseMetaDepends(text: string, meta = KERNEL_META_PACKAGE): string | undefined {
  const m = /^\s*Depends:\s*(linux-image-[0-9][^\s<>]*)\s*$/m.exec(text);
  return m && m[1] !== meta ? m[1] : undefined;
}

/** The Version field of `apt-cache show --no-all-versions` output. */
export function parseShowVersion(text: string): string | undefined {
  return /^Version:\s*(\S+)\s*$/m.exec(text)?.[1];
}

/**
 * A package that holds a kernel itself rather than pointing at one: its name carries the ABI
 * (linux-image-6.1.0-57-cloud-amd64, linux-image-6.12.117+deb12-cloud-amd64), where a
 * meta-package's has at most major.minor (linux-image-cloud-amd64, linux-image-6.12-cloud-amd64).
 */
export function isVersionedImage(pkg: string): boolean {
  return /^linux-image-\d+\.\d+(\.0-\d+|\.\d+\+)/.test(pkg);
}

/** Which kernel the guest runs: the one Debian's meta-package points at now, or the versioned package named. */
export async function resolveKernel(meta = KERNEL_META_PACKAGE): Promise<KernelPackage> {
  const deps = await run('apt-cache', ['depends', '--no-recommends', '--no-suggests', meta], { allowFail: true });
  const pkg = deps.code !== 0 ? undefined : isVersionedImage(meta) ? meta : parseMetaDepends(deps.stdout, meta);
  if (!pkg) throw new VmError('kernel-package', `apt knows no ${meta} (${(deps.stderr || deps.stdout).trim().split('\n')[0] || 'no Depends line'})`, 'run scripts/install-vm.sh, which runs apt-get update');
  const show = await run('apt-cache', ['show', '--no-all-versions', pkg], { allowFail: true });
  const version = show.code === 0 ? parseShowVersion(show.stdout) : undefined;
  if (!version) throw new VmError('kernel-package', `apt-cache show ${pkg} gives no version`, 'run apt-get update, then try again');
  return { package: pkg, version };
}

/**
 * The kernel, downloaded with apt-get and unpacked with dpkg -x into the cache (never installed:
 * the host's /boot and /lib/modules are not touched). Cached per package version; a half-done
 * download is never taken for a finished one (it is renamed into place when complete).
 */
export async function fetchKernel(cache: string, k: KernelPackage, log: (m: string) => void): Promise<Kernel> {
  const dir = join(kernelDir(cache), kernelKey(k.package, k.version));
  if (!existsSync(join(dir, 'ready'))) {
    log(`downloading ${k.package} ${k.version} (apt-get download; not installed)`);
    await mkdir(kernelDir(cache), { recursive: true });
    const tmp = `${dir}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    try {
      // apt-get download writes into the current directory.
      const dl = await run('bash', ['-c', `cd ${shQuote(tmp)} && exec apt-get download -q -o APT::Sandbox::User=root ${shQuote(`${k.package}=${k.version}`)}`], { allowFail: true, env: { ...process.env, LC_ALL: 'C' }, timeoutMs: 600_000 });
      const deb = readdirSync(tmp).find((f) => f.endsWith('.deb'));
      if (dl.code !== 0 || !deb) throw new VmError('kernel-package', `apt-get download ${k.package}=${k.version} failed: ${(dl.stderr || dl.stdout).trim().split('\n').slice(-2).join(' | ')}`, 'check the network and apt sources, run apt-get update, then try again');
      await run('dpkg', ['-x', join(tmp, deb), join(tmp, 'root')]);
      await rm(join(tmp, deb));
      const release = kernelRelease(join(tmp, 'root'));
      await run('depmod', ['-b', join(tmp, 'root'), release]);
      await writeFile(join(tmp, 'ready'), `${k.package} ${k.version}\n`);
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }
  const root = join(dir, 'root');
  const release = kernelRelease(root);
  return { ...k, root, release, vmlinuz: join(root, 'boot', `vmlinuz-${release}`), config: join(root, 'boot', `config-${release}`) };
}

function kernelRelease(root: string): string {
  const dirs = existsSync(join(root, 'lib', 'modules')) ? readdirSync(join(root, 'lib', 'modules')) : [];
  if (dirs.length !== 1) throw new VmError('kernel-package', `the kernel package holds ${dirs.length} module trees (lib/modules/*), expected one`, `remove ${root} and try again`);
  return dirs[0];
}

/** Whether the kernel's configuration builds WireGuard (as a module or in). */
export function configHasWireGuard(configText: string): boolean {
  return /^CONFIG_WIREGUARD=[ym]$/m.test(configText);
}
