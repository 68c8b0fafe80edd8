import { existsSync, lstatSync, realpathSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VmError } from './failure.js';
import { commandScript, envScript, RUN_DIR } from './guest-init.js';
import { writeCpio, type CpioTree } from './image.js';

/** The checkout this wgp2p runs from (dist/src/lab/vm/ is four levels below it). */
export function checkoutRoot(): string {
  return fileURLToPath(new URL('../../../../', import.meta.url)).replace(/\/$/, '');
}

/** "/a/b/c" -> ["a", "a/b"]: the directories an archive must list before "a/b/c" can be unpacked. */
export function parentsOf(absolute: string): string[] {
  const parts = absolute.split(sep).filter(Boolean);
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

/**
 * The trees of the checkout that go into the guest, at their own absolute paths: everything but
 * .git, and node_modules' target when it is a symlink out of the checkout (a worktree's).
 */
export function checkoutTrees(root: string): CpioTree[] {
  if (!existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))) throw new VmError('image', `${root} has no dist/ (not built)`, 'run npm run build first');
  const rel = relative('/', root);
  const trees: CpioTree[] = [];
  const dirs = new Set<string>();
  const addParents = (abs: string) => {
    for (const p of parentsOf(abs)) if (!dirs.has(p)) dirs.add(p) && trees.push({ path: p, self: true });
  };
  addParents(root);
  trees.push({ path: rel, prune: [`${rel}/.git`, `${rel}/scratch`] });
  const nm = join(root, 'node_modules');
  if (lstatSync(nm, { throwIfNoEntry: false })?.isSymbolicLink()) {
    const target = realpathSync(nm);
    if (!target.startsWith(root + sep)) {
      addParents(target);
      trees.push({ path: relative('/', target) });
    }
  }
  return trees;
}

export interface RunFiles {
  nonce: string;
  argv: readonly string[];
  cwd: string;
  env: Record<string, string>;
  /** guest-scale.js, to measure the time scale in the guest. */
  scaleProbe?: string;
}

/** The per-run archives: the checkout, and the command with its environment under RUN_DIR. Returns their paths. */
export async function writeRunArchives(runDir: string, files: RunFiles, root: string): Promise<string[]> {
  const stage = join(runDir, 'stage');
  const dir = join(stage, RUN_DIR.slice(1));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'nonce'), files.nonce + '\n');
  await writeFile(join(dir, 'command.sh'), commandScript(files.argv, files.cwd, files.scaleProbe));
  await writeFile(join(dir, 'env.sh'), envScript(files.env), { mode: 0o600 });
  const checkout = join(runDir, 'checkout.cpio');
  const command = join(runDir, 'command.cpio');
  await writeCpio('/', checkoutTrees(root), checkout);
  await writeCpio(stage, [{ path: RUN_DIR.slice(1) }], command);
  return [checkout, command];
}
