/**
 * JSON from a peer. V8's JSON.parse is linear in size but not in nesting: 128 KiB of "[[[[…"
 * took 40 ms to refuse, and the protocol's messages nest five levels at most. One pass over the
 * text, skipping strings, finds the depth first.
 */

export const MAX_JSON_NESTING = 32;

/** Where `text` first nests brackets deeper than `max` (1-based character), or 0 if it never does. */
export function nestingOver(text: string, max: number): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // a backslash escapes the next character, a quote included
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return i + 1;
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
  }
  return 0;
}

/** JSON.parse, refusing nesting over `max` levels before parsing. Throws a SyntaxError that says which. */
export function parseJson(text: string, max = MAX_JSON_NESTING): unknown {
  const at = nestingOver(text, max);
  if (at > 0) throw new SyntaxError(`brackets nest over ${max} deep at character ${at}`);
  return JSON.parse(text);
}
