/** Renders rows as an aligned plain-text table (the human form of every `--json` listing). */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
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
