import { request } from 'node:http';

export interface JsonReply {
  status: number;
  /** The parsed body; undefined when it is not JSON. */
  body: unknown;
}

/**
 * POST a JSON body over plain HTTP (inside a WireGuard tunnel) and read a JSON reply of at most
 * `maxBytes`, all within `timeoutMs` from the call.
 *
 * node:http, not fetch: fetch's first call in a process loads undici and compiles its llhttp
 * WebAssembly inside the caller's deadline (117 ms on this host, against 11 ms for node:http;
 * in a TCG guest under load most of the enrol POST's 10 s went there and a join that the hub
 * answered at once failed with "The operation was aborted due to timeout"). A slow device pays
 * the same in proportion.
 */
export function postJson(url: string, payload: unknown, opts: { timeoutMs: number; maxBytes?: number; what: string }): Promise<JsonReply> {
  const maxBytes = opts.maxBytes ?? 1 << 20;
  const data = Buffer.from(JSON.stringify(payload));
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, reply?: JsonReply) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(reply!);
    };
    const timer = setTimeout(() => finish(new Error(`${opts.what}: no answer from ${new URL(url).host} within ${opts.timeoutMs / 1000} s`)), opts.timeoutMs);
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': data.length } }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) finish(new Error(`${opts.what}: the reply from ${new URL(url).host} is over ${maxBytes} bytes`));
        else chunks.push(c);
      });
      res.on('error', (err) => finish(err));
      res.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = undefined;
        }
        finish(undefined, { status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', (err) => finish(new Error(`${opts.what}: ${err.message}`)));
    req.end(data);
  });
}
