/** Bytes written as annotated hex, one structure field per line: `# comments` and spaces are ignored. */
export function hex(text: string): Buffer {
  const digits = text
    .split('\n')
    .map((l) => l.replace(/#.*$/, ''))
    .join('')
    .replace(/\s+/g, '');
  if (!/^([0-9a-f]{2})*$/i.test(digits)) throw new Error(`bad hex fixture: ${digits.length} digits`);
  return Buffer.from(digits, 'hex');
}
