import { mkdir, readFile, readdir, rm, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/** Lab records live in /run: they describe kernel state that a reboot removes anyway. */
export const LAB_STATE_DIR = process.env.WGP2P_LAB_STATE_DIR ?? '/run/wgp2p/labs';

const labStateSchema = z.object({
  name: z.string(),
  topologyFile: z.string().optional(),
  createdAt: z.string(),
  /** The plan as built (addresses as text; plan.ts decodes it); hosts carry their current network after a move. */
  plan: z.unknown(),
  namespaces: z.array(z.string()),
  wireguard: z.array(z.object({ host: z.string(), interface: z.string() })),
});
export type LabState = z.infer<typeof labStateSchema>;

export function statePath(name: string): string {
  return join(LAB_STATE_DIR, `${name}.json`);
}

export async function writeState(state: LabState): Promise<void> {
  await mkdir(LAB_STATE_DIR, { recursive: true, mode: 0o700 });
  const tmp = `${statePath(state.name)}.tmp`;
  await writeFile(tmp, JSON.stringify(state, null, 2), { mode: 0o600 });
  await rename(tmp, statePath(state.name));
}

export async function readState(name: string): Promise<LabState | undefined> {
  let text: string;
  try {
    text = await readFile(statePath(name), 'utf8');
  } catch {
    return undefined;
  }
  const parsed = labStateSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`lab record ${statePath(name)} is corrupt; run "wgp2p lab down ${name}" to clean up`);
  return parsed.data;
}

export async function removeState(name: string): Promise<void> {
  await rm(statePath(name), { force: true });
}

export async function listStates(): Promise<string[]> {
  try {
    return (await readdir(LAB_STATE_DIR)).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
  } catch {
    return [];
  }
}
