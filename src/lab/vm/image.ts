import { constants, existsSync } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, open, readdir, readFile, readlink, realpath, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { run } from '../../core/exec.js';
import { imageKey, type ImageInputs } from './cache-key.js';
import { ALTERNATIVES, GUEST_PACKAGES, IMAGE_FORMAT, imageDir, MODULE_TREES, SKIPPED_PATHS } from './config.js';
import { VmError } from './failure.js';
import { initScript, shQuote } from './guest-init.js';
import type { Kernel } from './kernel.js';
import { parseModulesDep, selectModules } from './modules.js';

export interface BaseImage {
  path: string;
  key: string;
  built: boolean;
}

/** Installed versions of the packages the guest copies; a missing one is named with its fix. */
export async function packageVersions(pkgs: readonly string[] = GUEST_PACKAGES): Promise<Record<string, string>> {
  const r = await run('dpkg-query', ['-W', '-f', '${Package}\\t${Version}\\t${db:Status-Status}\\n', ...pkgs], { allowFail: true });
  const versions: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const [p, v, status] = line.split('\t');
    if (p && v && status === 'installed') versions[p] = v;
  }
  const missing = pkgs.filter((p) => versions[p] === undefined);
  if (missing.length) throw new VmError('image', `the guest copies this machine's ${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not installed`, `run scripts/install.sh (or apt-get install -y ${missing.join(' ')})`);
  return versions;
}

export async function imageInputs(kernel: Kernel): Promise<ImageInputs> {
  return {
    format: IMAGE_FORMAT,
    kernel: { package: kernel.package, version: kernel.version },
    packages: await packageVersions(),
    node: { path: process.execPath, version: process.version },
    moduleTrees: MODULE_TREES,
    init: initScript(),
  };
}

/**
 * The guest's root: this machine's binaries of GUEST_PACKAGES and node with the libraries they
 * link, the kernel's network modules, and /init, as an uncompressed cpio (under TCG the kernel
 * would take longer to gunzip it than QEMU takes to load it). Cached under its key; older images
 * of the same kernel release are removed when a new one is built.
 */
export async function baseImage(cache: string, kernel: Kernel, opts: { rebuild?: boolean; log: (m: string) => void }): Promise<BaseImage> {
  const inputs = await imageInputs(kernel);
  const key = imageKey(inputs);
  const dir = imageDir(cache);
  // One image per kernel release: switching --kernel-package back and forth does not rebuild.
  const prefix = `base-${kernel.release}-`;
  const path = join(dir, `${prefix}${key}.cpio`);
  if (existsSync(path) && !opts.rebuild) return { path, key, built: false };
  opts.log(`building the guest image ${key} (${kernel.release}, node ${process.version}, ${GUEST_PACKAGES.length} packages)`);
  await mkdir(dir, { recursive: true });
  const stage = join(dir, `stage-${process.pid}`);
  await rm(stage, { recursive: true, force: true });
  try {
    await buildRoot(stage, kernel, inputs);
    await writeCpio(stage, [{ path: '.' }], `${path}.tmp`);
    await rename(`${path}.tmp`, path);
  } finally {
    await rm(stage, { recursive: true, force: true });
    await rm(`${path}.tmp`, { force: true });
  }
  // (base-KEY.cpio: the first format's name, one image for every kernel.)
  for (const f of await readdir(dir)) if ((f.startsWith(prefix) || /^base-[0-9a-f]{20}\.cpio$/.test(f)) && f !== basename(path)) await rm(join(dir, f), { force: true });
  return { path, key, built: true };
}

async function buildRoot(stage: string, kernel: Kernel, inputs: ImageInputs): Promise<void> {
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'proc', 'sys', 'dev', 'run', 'tmp', 'root', 'etc', 'var/tmp', 'var/lib', 'var/cache']) await mkdir(join(stage, d), { recursive: true });
  // Debian's merged /usr: wg-quick's "#!/bin/bash" and ld.so's /lib64 path go through these.
  for (const l of ['bin', 'sbin', 'lib', 'lib64']) await symlink(`usr/${l}`, join(stage, l));
  await symlink('/run', join(stage, 'var/run'));

  const copier = new Copier(stage);
  for (const pkg of Object.keys(inputs.packages)) {
    const list = (await run('dpkg-query', ['-L', pkg])).stdout.split('\n').filter((p) => p.startsWith('/') && !SKIPPED_PATHS.some((re) => re.test(p)));
    for (const p of list) await copier.add(p, false);
  }
  await copier.add(process.execPath, false);
  // Commands Debian provides through the alternatives system, which dpkg -L does not list: the
  // hub's PostUp runs iptables (measured: "iptables: command not found" in the guest without it).
  for (const alt of ALTERNATIVES) await copier.add(alt, false);
  await copier.addLibraries();

  const release = kernel.release;
  const modRoot = join(kernel.root, 'lib', 'modules', release);
  const chosen = selectModules(parseModulesDep(await readFile(join(modRoot, 'modules.dep'), 'utf8')), MODULE_TREES);
  const target = join(stage, 'usr', 'lib', 'modules', release);
  for (const m of chosen) {
    await mkdir(dirname(join(target, m)), { recursive: true });
    await copyFile(join(modRoot, m), join(target, m));
  }
  for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) if (existsSync(join(modRoot, f))) await copyFile(join(modRoot, f), join(target, f));
  await run('depmod', ['-b', stage, release]);

  await writeFile(join(stage, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
  await writeFile(join(stage, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(join(stage, 'etc/hosts'), '127.0.0.1 localhost wgp2p-vm\n::1 localhost\n');
  await writeFile(join(stage, 'etc/nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files\n');
  await writeFile(join(stage, 'etc/resolv.conf'), '');
  await writeFile(join(stage, 'init'), initScript(), { mode: 0o755 });
}

/**
 * Copies files into the stage at their canonical place (directories resolved, so /bin/bash lands
 * in usr/bin beside the merged-/usr link), symlinks as symlinks together with what they point at,
 * and remembers ELF files for the library pass.
 */
class Copier {
  private readonly done = new Set<string>();
  private readonly elves: string[] = [];
  constructor(private readonly stage: string) {}

  async add(path: string, required: boolean): Promise<void> {
    let st;
    try {
      st = await lstat(path);
    } catch {
      if (required) throw new VmError('image', `${path} is missing on this machine`, 'run scripts/install.sh');
      return;
    }
    if (st.isDirectory()) return;
    const canonical = join(await realpath(dirname(path)), basename(path));
    if (this.done.has(canonical)) return;
    this.done.add(canonical);
    const dest = join(this.stage, canonical);
    await mkdir(dirname(dest), { recursive: true });
    if (st.isSymbolicLink()) {
      const link = await readlink(path);
      await symlink(link, dest).catch((e: NodeJS.ErrnoException) => (e.code === 'EEXIST' ? undefined : Promise.reject(e)));
      await this.add(resolve(dirname(canonical), link), required);
      return;
    }
    if (!st.isFile()) return;
    await copyFile(path, dest, constants.COPYFILE_FICLONE);
    await chmod(dest, st.mode & 0o7777);
    if (st.mode & 0o111 || /\.so(\.|$)/.test(path)) {
      if (await isElf(path)) this.elves.push(path);
    }
  }

  /** Every library the copied ELF files need, and theirs (ldd resolves the whole tree). */
  async addLibraries(): Promise<void> {
    const seen = new Set<string>();
    while (this.elves.length) {
      const batch = this.elves.splice(0, 64).filter((e) => !seen.has(e));
      batch.forEach((e) => seen.add(e));
      if (!batch.length) continue;
      const r = await run('ldd', batch, { allowFail: true, env: { ...process.env, LC_ALL: 'C' } });
      for (const lib of lddPaths(r.stdout)) await this.add(lib, true);
    }
  }
}

/** Library paths in ldd output ("libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)", "/lib64/ld-linux-x86-64.so.2 (0x…)"). */
export function lddPaths(text: string): string[] {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /=>\s*(\/\S+)\s+\(0x/.exec(line) ?? /^\s*(\/\S+)\s+\(0x/.exec(line);
    if (m) out.add(m[1]);
  }
  return [...out];
}

async function isElf(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, 0);
    return b.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    await fh.close();
  }
}

/** One `find` over a tree: its paths (relative to the archive's root), minus pruned subtrees; `self` lists only the directory itself. */
export interface CpioTree {
  path: string;
  prune?: readonly string[];
  self?: boolean;
}

/** The shell pipeline that writes a newc cpio (owned by root) of `trees`, relative to `cwd`. */
export function cpioScript(trees: readonly CpioTree[], out: string): string {
  const finds = trees.map((t) => {
    const prune = (t.prune ?? []).flatMap((p) => ['-path', shQuote(p), '-prune', '-o']);
    return ['find', shQuote(t.path), ...(t.self ? ['-maxdepth', '0'] : []), ...prune, '-print0'].join(' ');
  });
  return `{ ${finds.join('; ')}; } | cpio --null -o -H newc -R 0:0 --quiet > ${shQuote(out)}`;
}

export async function writeCpio(cwd: string, trees: readonly CpioTree[], out: string): Promise<void> {
  const r = await run('bash', ['-o', 'pipefail', '-c', `cd ${shQuote(cwd)} && ${cpioScript(trees, out)}`], { allowFail: true, env: { ...process.env, LC_ALL: 'C' } });
  if (r.code !== 0) throw new VmError('image', `cpio failed: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`, 'check that cpio is installed (scripts/install-vm.sh) and the disk has room');
}
