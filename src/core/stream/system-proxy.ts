import { readFileSync } from 'node:fs';

/**
 * Where Debian and most Linux distributions keep a system-wide proxy: /etc/environment, read by
 * pam_env at login (so every shell has it) but not by systemd for its services. An agent that
 * runs as a unit would otherwise miss the proxy its machine's users have; the daemon reads the
 * file itself. The process's own environment wins: a proxy set (or emptied) for wgp2p is what
 * the user asked for.
 */
export const ETC_ENVIRONMENT = '/etc/environment';

const PROXY_KEYS = ['HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy', 'NO_PROXY', 'no_proxy'] as const;
const MAX_BYTES = 64 * 1024;

/** `KEY=VALUE` lines as pam_env reads them: comments, blank lines and an `export ` prefix allowed, one pair of quotes stripped. */
export function parseEnvironmentFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.slice(0, MAX_BYTES).split('\n')) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('export ')) line = line.slice(7).trimStart();
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) continue;
    let value = line.slice(eq + 1);
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) value = value.slice(1, -1);
    out[key] = value;
  }
  return out;
}

/** The environment proxyFor() reads: the process's, or where it names no proxy, the system's proxy settings under it. */
export function proxyEnvironment(env: NodeJS.ProcessEnv = process.env, read: () => string = () => readFileSync(ETC_ENVIRONMENT, 'utf8')): NodeJS.ProcessEnv {
  if (PROXY_KEYS.some((k) => env[k] !== undefined)) return env;
  let system: Record<string, string>;
  try {
    system = parseEnvironmentFile(read());
  } catch {
    return env;
  }
  const picked: NodeJS.ProcessEnv = {};
  for (const k of PROXY_KEYS) if (system[k] !== undefined) picked[k] = system[k];
  return { ...picked, ...env };
}
