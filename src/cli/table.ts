/**
 * Text that came from a peer (an agent's reason, a node's name in a report) reaches a terminal:
 * control characters could move the cursor or rewrite what was shown. They become "?".
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '?');
}

/** Renders rows as an aligned plain-text table (the human form of every `--json` listing). */
export function renderTable(headers: readonly string[], rawRows: readonly (readonly string[])[]): string {
  const rows = rawRows.map((r) => r.map((c) => printable(c ?? '')));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** A one-line progress indicator on stderr; silent when stderr is not a terminal except for the final line. */
export function progressPrinter(label: string): (message: string, done: number, total: number) => void {
  const tty = process.stderr.isTTY;
  return (message, done, total) => {
    const text = `${label} [${done}/${total}] ${message}`;
    if (tty) process.stderr.write(`\r\x1b[2K${text}${done === total ? '\n' : ''}`);
    else process.stderr.write(`${text}\n`);
  };
}
