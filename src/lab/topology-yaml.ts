import { Composer, Parser, type CST } from 'yaml';

/**
 * YAML for topology files, bounded. The `yaml` library reports every error it finds, and each
 * costs it ~50 µs (an Error with its stack, its position, garbage): 15 KB of "]" took 3 s to
 * refuse. And it checks a mapping's keys for duplicates pairwise: 3,000 keys took 0.5–1 s. Its
 * streaming parser hands over one token at a time, so this stops at the first error token,
 * refuses a second document, bounds every collection, and only then composes the document.
 */

/** A topology's largest mapping (a host) has a dozen keys; its longest list, a few hundred hosts. */
const MAX_KEYS = 64;
const MAX_ITEMS = 512;
/** Block indentation nests too, without brackets: "- - - - …" is a list in a list in a list. */
const MAX_DEPTH = 64;
export function parseYaml(text: string): unknown {
  const tokens: CST.Token[] = [];
  for (const token of new Parser().parse(text)) {
    if (token.type === 'error') throw new SyntaxError(`${token.message} (at character ${token.offset + 1})`);
    if (token.type === 'document' && tokens.some((t) => t.type === 'document')) throw new SyntaxError(`a second document starts at character ${token.offset + 1}; a topology is one document (no "---" between parts)`);
    tokens.push(token);
  }
  for (const token of tokens) checkShape(token);
  const stack = Error.stackTraceLimit;
  // The composer may still build an error per bad node; their stacks are never read.
  Error.stackTraceLimit = 0;
  try {
    const composer = new Composer({ prettyErrors: false });
    const docs = [...composer.compose(tokens, true, text.length)];
    const doc = docs[0];
    if (!doc) return null;
    const first = doc.errors[0];
    if (first) throw new SyntaxError(`${first.message} (at character ${first.pos[0] + 1})`);
    return doc.toJS({ maxAliasCount: 100 });
  } finally {
    Error.stackTraceLimit = stack;
  }
}

type Item = { key?: CST.Token | null; value?: CST.Token };

/** Walks the CST without recursion (its depth is the input's to choose) and refuses what is too big to compose quickly. */
function checkShape(root: CST.Token): void {
  const stack: { token: CST.Token; depth: number }[] = [{ token: root, depth: 0 }];
  while (stack.length > 0) {
    const { token, depth } = stack.pop()!;
    if (depth > MAX_DEPTH) throw new SyntaxError(`lists and mappings nest over ${MAX_DEPTH} deep (at character ${token.offset + 1})`);
    let children: (CST.Token | null | undefined)[] = [];
    if (token.type === 'document') children = [token.value];
    else if (token.type === 'block-map' || token.type === 'block-seq' || token.type === 'flow-collection') {
      const items = token.items as Item[];
      const isMap = token.type === 'block-map' || (token.type === 'flow-collection' && token.start.source === '{');
      const max = isMap ? MAX_KEYS : MAX_ITEMS;
      if (items.length > max) throw new SyntaxError(`a ${isMap ? 'mapping' : 'list'} has over ${max} ${isMap ? 'keys' : 'items'} (at character ${token.offset + 1})`);
      children = items.flatMap((i) => [i.key, i.value]);
    }
    for (const c of children) if (c) stack.push({ token: c, depth: depth + 1 });
  }
}
