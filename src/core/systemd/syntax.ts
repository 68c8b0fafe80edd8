/**
 * The parts of systemd.syntax(7) and systemd.service(5) "Command lines" that unit files written by
 * wgp2p use: safe values, one quoted word, and reading Exec and Environment lines back (the lab's
 * reboot test starts a device exactly as its unit says, so it must read the unit as systemd does).
 */

export class UnitSyntaxError extends Error {
  override name = 'UnitSyntaxError';
}

/**
 * What a path or a name in a unit may hold. Narrower than systemd allows on purpose: no spaces,
 * quotes, "%" (specifiers), "$" (variables), ";" (a command separator) or "\\", so a value can never
 * change the meaning of the line it is in, whatever the escaping.
 */
const SAFE = /^[A-Za-z0-9_./-]+$/;

/** An absolute path for a unit; `what` names the option or file, so the message says what to fix. */
export function unitPath(what: string, path: string): string {
  if (!path.startsWith('/')) throw new UnitSyntaxError(`${what} "${path}" must be an absolute path in a systemd unit (systemd does not know the current directory); give it as /…`);
  if (!SAFE.test(path)) throw new UnitSyntaxError(`${what} "${path}" has a character a systemd unit would read differently; use only letters, digits and _ . - / (move or rename it)`);
  if (path.split('/').some((s) => s === '..' || s === '.')) throw new UnitSyntaxError(`${what} "${path}" has a "." or ".." part; give the path without it`);
  return path;
}

/**
 * An interface name: what wg-quick accepts (1-15 characters) within the safe set, so "=" and "+",
 * which wg-quick allows, are refused too.
 */
export function unitIfname(what: string, name: string): string {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name) || name === '.' || name === '..') {
    throw new UnitSyntaxError(`${what} "${name}" cannot name an interface in a systemd unit: 1-15 letters, digits, _ . - (e.g. wg0)`);
  }
  return name;
}

/**
 * One word of an Exec line, as systemd reads it back into one argument: "%" doubled (specifiers),
 * "$" doubled (variables), and the word in double quotes with C escapes when it holds anything but
 * plain characters. wgp2p's own values never need the quotes (unitPath, unitIfname); this is the
 * line of defence for everything else that goes into a command line (addresses, port ranges).
 */
export function execWord(word: string): string {
  if (word === '') return '""';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(word)) throw new UnitSyntaxError(`"${JSON.stringify(word)}" has a control character; a systemd unit cannot hold it in a command`);
  // A lone ";" separates commands; systemd.service(5) escapes it as "\;".
  if (word === ';') return '\\;';
  const e = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  if (/^[A-Za-z0-9_./:=,+@%$-]+$/.test(e)) return e;
  return `"${e.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A command line: the first word is the executable, which systemd wants absolute. */
export function execLine(argv: readonly string[]): string {
  if (argv.length === 0) throw new UnitSyntaxError('an Exec line needs a command');
  unitPath('the command', argv[0]);
  return argv.map(execWord).join(' ');
}

export interface ExecCommand {
  /** The prefixes before the path: "-" means a failure is ignored. */
  ignoreFailure: boolean;
  argv: string[];
}

const ESCAPES: Record<string, string> = { '\\': '\\', '"': '"', "'": "'", n: '\n', t: '\t', s: ' ', ';': ';' };

/**
 * Splits a value into words the way systemd does for Exec and Environment lines: whitespace
 * separates, "…" and '…' group, backslash escapes; "%%" is "%" and "$$" is "$". Any other specifier or
 * variable is refused: units wgp2p writes never use them, so meeting one means the text is not ours.
 */
export function splitWords(value: string): string[] {
  const words: string[] = [];
  let i = 0;
  const n = value.length;
  while (i < n) {
    while (i < n && /\s/.test(value[i])) i++;
    if (i >= n) break;
    let word = '';
    let quote: string | undefined;
    for (; i < n; i++) {
      const c = value[i];
      if (quote === undefined && /\s/.test(c)) break;
      if (quote === undefined && (c === '"' || c === "'")) {
        quote = c;
        continue;
      }
      if (c === quote) {
        quote = undefined;
        continue;
      }
      if (c === '\\') {
        const next = value[++i];
        const e = next === undefined ? undefined : ESCAPES[next];
        if (e === undefined) throw new UnitSyntaxError(`unknown escape "\\${next ?? ''}" in: ${value}`);
        word += e;
        continue;
      }
      if (c === '%' || c === '$') {
        if (value[i + 1] !== c) throw new UnitSyntaxError(`"${c}${value[i + 1] ?? ''}" (a specifier or variable) in: ${value}`);
        word += c;
        i++;
        continue;
      }
      word += c;
    }
    if (quote !== undefined) throw new UnitSyntaxError(`unterminated ${quote} in: ${value}`);
    words.push(word);
  }
  return words;
}

/** One Exec line's value back into its command: the inverse of execLine, with the "-" prefix. */
export function parseExec(value: string): ExecCommand {
  const m = /^([-@:+!]*)(.*)$/s.exec(value.trim())!;
  if (/[@:+!]/.test(m[1])) throw new UnitSyntaxError(`prefix "${m[1]}" is not one wgp2p writes: ${value}`);
  if (/(^|\s);(\s|$)/.test(m[2])) throw new UnitSyntaxError(`several commands in one line (";") are not written by wgp2p: ${value}`);
  const argv = splitWords(m[2]);
  if (argv.length === 0) throw new UnitSyntaxError(`an empty command: ${value}`);
  return { ignoreFailure: m[1].includes('-'), argv };
}

/** A unit file's settings: section -> key -> every value in order (Exec lines repeat). */
export type UnitSettings = Map<string, Map<string, string[]>>;

export function parseUnit(text: string): UnitSettings {
  const out: UnitSettings = new Map();
  let section: Map<string, string[]> | undefined;
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    if (line.endsWith('\\')) throw new UnitSyntaxError(`line ${n + 1}: continued lines are not written by wgp2p`);
    const header = /^\[([^\]]+)\]$/.exec(line);
    if (header) {
      section = out.get(header[1]) ?? new Map();
      out.set(header[1], section);
      continue;
    }
    const kv = /^([A-Za-z0-9]+)\s*=\s*(.*)$/.exec(line);
    if (!kv || !section) throw new UnitSyntaxError(`line ${n + 1} is neither a [Section] nor KEY=VALUE inside one: ${line}`);
    section.set(kv[1], [...(section.get(kv[1]) ?? []), kv[2]]);
  }
  return out;
}

/** What a service runs, in order, and with which environment: read from the unit as systemd would. */
export interface ServiceCommands {
  env: Record<string, string>;
  startPre: ExecCommand[];
  start: ExecCommand;
  stopPost: ExecCommand[];
}

export function serviceCommands(text: string): ServiceCommands {
  const service = parseUnit(text).get('Service');
  if (!service) throw new UnitSyntaxError('the unit has no [Service] section');
  const env: Record<string, string> = {};
  for (const v of service.get('Environment') ?? []) {
    for (const w of splitWords(v)) {
      const eq = w.indexOf('=');
      if (eq <= 0) throw new UnitSyntaxError(`Environment "${w}" is not NAME=VALUE`);
      env[w.slice(0, eq)] = w.slice(eq + 1);
    }
  }
  const start = service.get('ExecStart') ?? [];
  if (start.length !== 1) throw new UnitSyntaxError(`a simple service has one ExecStart, this one has ${start.length}`);
  return { env, startPre: (service.get('ExecStartPre') ?? []).map(parseExec), start: parseExec(start[0]), stopPost: (service.get('ExecStopPost') ?? []).map(parseExec) };
}
