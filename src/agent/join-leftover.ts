import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { z } from 'zod';
import { writeSecret } from '../core/secret-file.js';

/**
 * What a join has up while it runs: a one-time WireGuard interface (wgjPID) and a temporary
 * directory holding the one-time key's wg-quick file. A join that is killed (SIGKILL, power)
 * cannot take them down, so it notes them in DIR/.join-in-progress.json before it makes them,
 * and the next join in the same DIR removes what that note names. The note is what makes them
 * ours: an interface is never removed for its name alone.
 */

export const JOIN_NOTE = '.join-in-progress.json';

const TMP_PREFIX = 'wgp2p-join-';

const noteSchema = z
  .object({
    pid: z.number().int().positive(),
    ifname: z.string().regex(/^wgj\d{1,6}$/, 'must be a one-time join interface (wgjPID)'),
    tmp: z.string().max(4096),
  })
  .strict();
export type JoinNote = z.output<typeof noteSchema>;

/** The join's temporary directory: directly in the system's temp directory, with our prefix. */
function isOurTmp(path: string): boolean {
  const rel = relative(tmpdir(), path);
  return rel.startsWith(TMP_PREFIX) && !rel.includes(sep) && !rel.includes('..');
}

export function tmpPrefix(): string {
  return join(tmpdir(), TMP_PREFIX);
}

export function writeJoinNote(dir: string, note: JoinNote): void {
  writeSecret(join(dir, JOIN_NOTE), JSON.stringify(note) + '\n');
}

export function removeJoinNote(dir: string): void {
  rmSync(join(dir, JOIN_NOTE), { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, it is just not ours to signal.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes what a killed join in `dir` left behind, using `deleteLink` for its interface. Returns
 * what it removed (nothing: undefined). A note of a join that is still running is a refusal: two
 * joins in one directory would write the same files.
 */
export async function removeLeftoverJoin(dir: string, deleteLink: (ifname: string) => Promise<unknown>): Promise<JoinNote | undefined> {
  const path = join(dir, JOIN_NOTE);
  if (!existsSync(path)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    raw = undefined;
  }
  const r = noteSchema.safeParse(raw);
  if (!r.success) {
    // Not a note we wrote: touch nothing it names, and say how to go on.
    const why = r.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ');
    throw new Error(`${path} is not a note of an earlier join (${why}); remove it if no "wgp2p join" is running, then join again`);
  }
  const note = r.data;
  if (note.pid !== process.pid && alive(note.pid)) {
    throw new Error(`another "wgp2p join" (pid ${note.pid}) is under way in ${dir}; wait for it, or stop it, or remove ${path} if that process is not a join`);
  }
  await deleteLink(note.ifname);
  if (isOurTmp(note.tmp)) rmSync(note.tmp, { recursive: true, force: true });
  rmSync(path, { force: true });
  return note;
}
