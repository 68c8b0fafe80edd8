/**
 * The fuzz engine shared by bench/fuzz.ts (10^6 inputs) and test/unit/fuzz.test.ts (the CI slice):
 * a seeded generator of inputs mutated from valid samples, and a runner that counts what each
 * parser accepted, refused and crashed on, and what it was slowest on.
 *
 * Every input is derived from (seed, parser, index) alone, so `--parser P --index I` replays one
 * input without generating the ones before it.
 */

/** What a parser did with an input; anything it throws instead is a crash. */
export type Outcome = 'accepted' | 'refused';

export interface FuzzTarget {
  readonly name: string;
  /** Inputs the parser accepts: mutated, truncated and spliced into the generated ones. */
  readonly samples: readonly Buffer[];
  /** The longest input to generate (a datagram cannot exceed 65,507 bytes; a text can). */
  readonly maxLength: number;
  /** A JSON document inside the input (the whole text, or a join code's payload): mutated as a tree too. */
  readonly json?: { decode(input: Buffer): unknown; encode(value: unknown): Buffer };
  /** Runs the parser; returns 'refused' for its documented refusal and rethrows anything else. */
  run(input: Buffer): Outcome;
}

export interface CrashReport {
  index: number;
  error: string;
  length: number;
  /** The whole input up to 4 KiB; longer ones are replayed with --parser and --index. */
  base64: string;
  truncated: boolean;
}

export interface ParserReport {
  inputs: number;
  accepted: number;
  refused: number;
  crashes: number;
  firstCrashes: CrashReport[];
  /** Inputs that took over 10 ms when first run (a garbage collection can land on any of them). */
  over10msFirstRun: number;
  /** Time spent in the parser over all inputs. */
  parserSeconds: number;
  /** The slowest input, timed again: the median of 5 runs, which a collection cannot inflate. */
  slowest: { ms: number; cpuMs: number; firstRunMs: number; index: number; length: number; base64: string; truncated: boolean };
}

export interface FuzzReport {
  seed: number;
  inputs: number;
  crashes: number;
  parsers: Record<string, ParserReport>;
}

/** sfc32, seeded through splitmix32: fast, 128 bits of state, and the same sequence on every machine. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(...seeds: number[]) {
    let h = 0x9e3779b9;
    const mix = (x: number) => {
      h = Math.imul(h ^ x, 0x85ebca6b) >>> 0;
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
      return (h ^= h >>> 16) >>> 0;
    };
    for (const s of seeds) mix(s >>> 0);
    this.a = mix(1);
    this.b = mix(2);
    this.c = mix(3);
    this.d = mix(4);
    for (let i = 0; i < 12; i++) this.next();
  }
  next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }
  /** 0 <= n < max */
  int(max: number): number {
    return max <= 0 ? 0 : Math.floor((this.next() / 4294967296) * max);
  }
  chance(p: number): boolean {
    return this.next() / 4294967296 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  /** Mostly small, sometimes up to `max`: the lengths where off-by-one and huge-input bugs live. */
  size(max: number): number {
    const r = this.int(10);
    if (r < 6) return this.int(Math.min(max, 16) + 1);
    if (r < 9) return this.int(Math.min(max, 512) + 1);
    return this.int(max + 1);
  }
}

const BYTES = [0x00, 0x01, 0x09, 0x0a, 0x0d, 0x20, 0x22, 0x23, 0x25, 0x2c, 0x2f, 0x3a, 0x3d, 0x5b, 0x5c, 0x5d, 0x7b, 0x7d, 0x7f, 0x80, 0xc0, 0xff];
const UNICODE = ['\u0000', '\u00a0', '\u0085', '\u00e9', '\u0130', '\u00df', '\u200b', '\u202e', '\u2028', '\ufeff', '\uffff', '\u{1f600}', '\ufffd', '\\ud800', '\\u0000', '\r', '\r\n', '\t'];
const TOKENS = [
  '-1', '0', '-0', '1e309', '-1e309', '4294967296', '18446744073709551616', '99999999999999999999999', '0.5', 'NaN', 'null', 'true', '""', '{}', '[]',
  '(none)', 'off', '::', '[::]:1', '0.0.0.0', '255.255.255.255', '::ffff:1.2.3.4', 'fe80::1%eth0', '10.0.0.1/33', '1.2.3.4:0', 'a'.repeat(64), '=', '[Peer]', '__proto__', 'constructor',
];
/** Characters a huge run is made of: whitespace that trim() removes, brackets and quotes that open structures. */
const RUNS = [' ', '\t', '[', ']', '{', '"', 'a', '0', ',', '=', '#', ':', '\u00a0', '\\'];

type Mutator = (rng: Rng, input: Buffer, t: FuzzTarget) => Buffer;

const mutators: Mutator[] = [
  // bit flips
  (rng, b) => {
    const out = Buffer.from(b);
    for (let n = 1 + rng.int(8); n > 0 && out.length > 0; n--) out[rng.int(out.length)] ^= 1 << rng.int(8);
    return out;
  },
  // interesting bytes
  (rng, b) => {
    const out = Buffer.from(b);
    for (let n = 1 + rng.int(4); n > 0 && out.length > 0; n--) out[rng.int(out.length)] = rng.pick(BYTES);
    return out;
  },
  // truncation
  (rng, b) => b.subarray(0, rng.int(b.length + 1)),
  // a range deleted
  (rng, b) => {
    const at = rng.int(b.length + 1);
    return Buffer.concat([b.subarray(0, at), b.subarray(at + rng.size(b.length - at))]);
  },
  // a range repeated: huge lengths
  (rng, b, t) => {
    const at = rng.int(b.length + 1);
    const chunk = b.subarray(at, at + 1 + rng.size(64));
    const times = Math.min(rng.size(100_000), Math.floor((t.maxLength - b.length) / Math.max(1, chunk.length)));
    return Buffer.concat([b.subarray(0, at), ...Array.from({ length: Math.max(0, times) }, () => chunk), b.subarray(at)]);
  },
  // a run of one character (e.g. "[" then 100,000 spaces)
  (rng, b, t) => insert(rng, b, Buffer.from(rng.pick(RUNS).repeat(Math.min(rng.size(100_000), t.maxLength)))),
  (rng, b) => insert(rng, b, Buffer.from(rng.pick(UNICODE))),
  (rng, b) => insert(rng, b, Buffer.from(rng.pick(TOKENS))),
  // splice of two valid samples
  (rng, b, t) => {
    const other = rng.pick(t.samples);
    return Buffer.concat([b.subarray(0, rng.int(b.length + 1)), other.subarray(rng.int(other.length + 1))]);
  },
  // deep nesting, in place of a stretch of the input
  (rng, b) => {
    const depth = rng.size(100_000);
    const [open, close] = rng.pick([['[', ']'], ['{"a":', '}'], ['[{"x":', '}]']]);
    const deep = open.repeat(depth) + (rng.chance(0.5) ? '1' : '') + (rng.chance(0.7) ? close.repeat(depth) : '');
    const at = rng.int(b.length + 1);
    return Buffer.concat([b.subarray(0, at), Buffer.from(deep), b.subarray(at + rng.size(8))]);
  },
];

function insert(rng: Rng, b: Buffer, what: Buffer): Buffer {
  const at = rng.int(b.length + 1);
  return Buffer.concat([b.subarray(0, at), what, b.subarray(at)]);
}

/** A value of any JSON type, biased to the edges: extreme numbers, odd strings, long arrays, nesting. */
function jsonValue(rng: Rng, max: number, depth = 0): unknown {
  switch (rng.int(depth > 3 ? 7 : 10)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, -0, 0.5, 1e308, -1e308, 2 ** 53, 2 ** 32, 65535, 65536, Number.MAX_SAFE_INTEGER + 2, 5e-324]);
    case 3:
      return rng.int(70000) - 1000;
    case 4:
      return rng.pick(TOKENS);
    case 5:
      return rng.pick(UNICODE).replace('\\u', '\u005c\u005cu') + rng.pick(TOKENS);
    case 6:
      return rng.pick(RUNS).repeat(rng.size(Math.min(100_000, max)));
    case 7:
      return Array.from({ length: rng.size(Math.min(3000, max >> 2)) }, () => (rng.chance(0.9) ? rng.int(10) : jsonValue(rng, max, depth + 1)));
    case 8:
      return Object.fromEntries(Array.from({ length: rng.size(8) }, () => [rng.pick(['type', 'a', '__proto__', 'constructor', 'peers', 'id', '']), jsonValue(rng, max, depth + 1)]));
    default: {
      // Nesting as a tree stays shallow enough for the encoders here (YAML.stringify recurses);
      // the deep-nesting mutator writes 100,000 levels as text.
      let v: unknown = 1;
      for (let i = rng.size(Math.min(300, max >> 3)); i > 0; i--) v = rng.chance(0.5) ? [v] : { a: v };
      return v;
    }
  }
}

/** Every container in a tree with the key under which a child sits, so one can be replaced. */
function slots(root: unknown): { parent: Record<string, unknown> | unknown[]; key: string | number }[] {
  const out: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0 && out.length < 5000) {
    const v = stack.pop();
    if (Array.isArray(v)) v.forEach((c, i) => (out.push({ parent: v, key: i }), stack.push(c)));
    else if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) out.push({ parent: v as Record<string, unknown>, key: k }), stack.push(c);
  }
  return out;
}

/** Structure-aware mutation: replace, delete, duplicate or transplant one node of a valid document. */
function mutateJson(rng: Rng, t: FuzzTarget, input: Buffer): Buffer {
  const json = t.json!;
  const doc = json.decode(input);
  const donor = json.decode(rng.pick(t.samples));
  for (let n = 1 + rng.int(3); n > 0; n--) {
    const all = slots(doc);
    if (all.length === 0) break;
    const { parent, key } = rng.pick(all);
    const cur = (parent as Record<string | number, unknown>)[key];
    switch (rng.int(6)) {
      case 0:
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete parent[key as string];
        break;
      case 1: {
        const fromDonor = slots(donor);
        if (fromDonor.length > 0) {
          const d = rng.pick(fromDonor);
          (parent as Record<string | number, unknown>)[key] = structuredClone((d.parent as Record<string | number, unknown>)[d.key]);
        }
        break;
      }
      case 2:
        if (Array.isArray(cur)) (parent as Record<string | number, unknown>)[key] = Array.from({ length: rng.size(Math.min(5000, t.maxLength >> 4)) }, () => structuredClone(cur[0]));
        else (parent as Record<string | number, unknown>)[key] = jsonValue(rng, t.maxLength);
        break;
      case 3:
        if (!Array.isArray(parent)) parent[rng.pick(['extra', '__proto__', 'constructor', 'toString', String(key) + ' '])] = jsonValue(rng, t.maxLength);
        break;
      default:
        (parent as Record<string | number, unknown>)[key] = jsonValue(rng, t.maxLength);
    }
  }
  return json.encode(doc);
}

/** The input `index` of `target`, from the seed alone. */
export function generate(seed: number, targetIndex: number, index: number, t: FuzzTarget): Buffer {
  const rng = new Rng(seed, targetIndex, index);
  const r = rng.int(100);
  if (r < 3) return Buffer.from(rng.pick(t.samples));
  if (r < 8) return Buffer.from(Array.from({ length: rng.size(4096) }, () => rng.int(256)));
  let input: Buffer = Buffer.from(rng.pick(t.samples));
  if (t.json && r < 50) input = mutateJson(rng, t, input);
  if (!t.json || r >= 50) for (let n = 1 + rng.int(4); n > 0; n--) input = rng.pick(mutators)(rng, input, t);
  return input.length > t.maxLength ? input.subarray(0, t.maxLength) : input;
}

const MAX_REPORTED = 4096;
const describe = (err: unknown) => (err instanceof Error ? `${err.name}: ${err.message}` : `thrown ${typeof err}: ${String(err)}`).slice(0, 500);
const encoded = (input: Buffer) => ({ length: input.length, base64: input.subarray(0, MAX_REPORTED).toString('base64'), truncated: input.length > MAX_REPORTED });

/**
 * Wall time, and CPU time: on a shared 2-core VM wall time also counts the scheduler's choices,
 * while the CPU time of this thread is what the parser itself costs.
 */
function timedRun(t: FuzzTarget, input: Buffer): { ms: number; cpuMs: number; outcome?: Outcome; error?: unknown } {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const done = () => {
    const ms = performance.now() - start;
    const c = process.cpuUsage(cpu);
    return { ms, cpuMs: (c.user + c.system) / 1000 };
  };
  try {
    const outcome = t.run(input);
    return { ...done(), outcome };
  } catch (error) {
    return { ...done(), error };
  }
}

export interface FuzzOptions {
  seed: number;
  /** Inputs over all parsers, shared out evenly. */
  inputs: number;
  /** Only these parsers (all when absent). */
  only?: readonly string[];
  /** Caps every target's maxLength: the CI slice stays fast, the bench goes to the targets' own. */
  maxLength?: number;
  onProgress?: (parser: string, done: number, of: number) => void;
}

/** Each target's samples must be accepted, or the fuzzer would mutate nothing worth mutating. */
export function checkSamples(targets: readonly FuzzTarget[]): void {
  for (const t of targets) {
    t.samples.forEach((s, i) => {
      const r = timedRun(t, s);
      if (r.outcome !== 'accepted') throw new Error(`fuzz target ${t.name}: sample ${i} is not accepted (${r.error ? describe(r.error) : r.outcome}): ${s.toString('utf8').slice(0, 200)}`);
    });
  }
}

export function runFuzz(targets: readonly FuzzTarget[], opts: FuzzOptions): FuzzReport {
  checkSamples(targets);
  const chosen = targets.map((t, i) => ({ t, i })).filter(({ t }) => !opts.only || opts.only.includes(t.name));
  const per = Math.ceil(opts.inputs / Math.max(1, chosen.length));
  const report: FuzzReport = { seed: opts.seed, inputs: 0, crashes: 0, parsers: {} };
  for (const { t: given, i: ti } of chosen) {
    const t = opts.maxLength === undefined ? given : { ...given, maxLength: Math.min(given.maxLength, opts.maxLength) };
    const p: ParserReport = { inputs: 0, accepted: 0, refused: 0, crashes: 0, firstCrashes: [], over10msFirstRun: 0, parserSeconds: 0, slowest: { ms: 0, cpuMs: 0, firstRunMs: 0, index: -1, length: 0, base64: '', truncated: false } };
    // The few slowest at first run are timed again: the one that stays slow is the figure.
    const slow: { ms: number; index: number }[] = [];
    for (let index = 0; index < per; index++) {
      const input = generate(opts.seed, ti, index, t);
      const r = timedRun(t, input);
      p.inputs++;
      if (r.outcome === 'accepted') p.accepted++;
      else if (r.outcome === 'refused') p.refused++;
      else {
        p.crashes++;
        if (p.firstCrashes.length < 3) p.firstCrashes.push({ index, error: describe(r.error), ...encoded(input) });
      }
      if (r.ms > 10) p.over10msFirstRun++;
      p.parserSeconds += r.ms / 1000;
      if (slow.length < 5 || r.ms > slow[slow.length - 1].ms) {
        slow.push({ ms: r.ms, index });
        slow.sort((a, b) => b.ms - a.ms);
        if (slow.length > 5) slow.pop();
      }
      if (opts.onProgress && index % 10_000 === 0) opts.onProgress(t.name, index, per);
    }
    for (const s of slow) {
      const input = generate(opts.seed, ti, s.index, t);
      const runs = Array.from({ length: 5 }, () => timedRun(t, input));
      const ms = runs.map((r) => r.ms).sort((a, b) => a - b)[2];
      const cpuMs = runs.map((r) => r.cpuMs).sort((a, b) => a - b)[2];
      if (ms >= p.slowest.ms) p.slowest = { ms: round(ms), cpuMs: round(cpuMs), firstRunMs: round(s.ms), index: s.index, ...encoded(input) };
    }
    p.parserSeconds = Math.round(p.parserSeconds * 100) / 100;
    report.parsers[t.name] = p;
    report.inputs += p.inputs;
    report.crashes += p.crashes;
  }
  return report;
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

/** One input again, for a crash or a slow input a report names. */
export function replay(targets: readonly FuzzTarget[], seed: number, parser: string, index: number, maxLength?: number): { input: Buffer; ms: number; outcome?: Outcome; error?: string } {
  const ti = targets.findIndex((t) => t.name === parser);
  if (ti < 0) throw new Error(`no parser "${parser}"; the parsers are ${targets.map((t) => t.name).join(', ')}`);
  const t = maxLength === undefined ? targets[ti] : { ...targets[ti], maxLength: Math.min(targets[ti].maxLength, maxLength) };
  const input = generate(seed, ti, index, t);
  const r = timedRun(t, input);
  return { input, ms: r.ms, outcome: r.outcome, error: r.error === undefined ? undefined : describe(r.error) };
}
