import { z } from 'zod';

/**
 * An array schema that stops at its first bad element. zod reports every bad element of a plain
 * z.array, and each issue costs tens of microseconds (its path, its message, garbage): a 9 KB
 * message of 700 bad subnets took 45 ms to refuse, and a peer controls that. One element's
 * issues name what is wrong and where, which is all a person fixing it needs.
 */
export function listOf<T extends z.ZodType>(item: T, bounds: { min?: number; max: number }): z.ZodType<z.output<T>[], z.input<T>[]> {
  const schema = z
    .array(z.unknown())
    .min(bounds.min ?? 0)
    .max(bounds.max)
    .transform((items, ctx): z.output<T>[] => {
      const out: z.output<T>[] = [];
      for (let i = 0; i < items.length; i++) {
        const r = item.safeParse(items[i]);
        if (!r.success) {
          const more = items.length - i - 1;
          for (const issue of r.error.issues.slice(0, 3)) {
            ctx.addIssue({ code: 'custom', message: more > 0 ? `${issue.message} (the first bad element, ${more} more not checked)` : issue.message, path: [i, ...issue.path] });
          }
          return z.NEVER;
        }
        out.push(r.data);
      }
      return out;
    });
  // What it accepts is what the element accepts, listed: the input type says so to callers.
  return schema as unknown as z.ZodType<z.output<T>[], z.input<T>[]>;
}

/** A record of at most `maxEntries` entries whose values are checked like listOf's elements: it stops at its first bad one. */
export function recordOf<V extends z.ZodType>(value: V, maxEntries: number): z.ZodType<Record<string, z.output<V>>, Record<string, z.input<V>>> {
  const schema = z
    .record(z.string(), z.unknown())
    .refine((r) => Object.keys(r).length <= maxEntries, { message: `at most ${maxEntries} entries` })
    .transform((r, ctx): Record<string, z.output<V>> => {
      const out: Record<string, z.output<V>> = {};
      for (const [k, v] of Object.entries(r)) {
        const p = value.safeParse(v);
        if (!p.success) {
          ctx.addIssue({ code: 'custom', message: p.error.issues[0]?.message ?? 'invalid', path: [k, ...(p.error.issues[0]?.path ?? [])] });
          return z.NEVER;
        }
        out[k] = p.data;
      }
      return out;
    });
  return schema as unknown as z.ZodType<Record<string, z.output<V>>, Record<string, z.input<V>>>;
}
