/**
 * Which kernel modules go into the guest: those under the chosen trees, and everything they
 * depend on (from depmod's modules.dep), so that no module is copied without its dependencies.
 */

/** modules.dep: "kernel/a.ko: kernel/b.ko kernel/c.ko" per line. */
export function parseModulesDep(text: string): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    deps.set(line.slice(0, colon).trim(), line.slice(colon + 1).split(/\s+/).filter(Boolean));
  }
  return deps;
}

export function selectModules(deps: ReadonlyMap<string, readonly string[]>, trees: readonly string[]): string[] {
  const chosen = new Set<string>();
  const visit = (m: string) => {
    if (chosen.has(m)) return;
    chosen.add(m);
    for (const d of deps.get(m) ?? []) visit(d);
  };
  for (const m of deps.keys()) if (trees.some((t) => (t.endsWith('/') ? m.startsWith(t) : m === t || m === `${t}.xz` || m === `${t}.zst`))) visit(m);
  return [...chosen].sort();
}
