import { rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenPrivate } from '../core/admin-socket.js';
import type { HubStatusJson } from '../core/status.js';
import { reply } from './http.js';

/**
 * The hub's admin socket, DIR/hub.sock: mode 0600, so the local shell's root is the only caller.
 * `wgp2p status --dir` reads `/v1/status` (its shape is core/status.ts); `/v1/stats` is the hub's
 * own counters alone, for a monitor or the scale bench, without the per-node and per-pair tables.
 */

export interface AdminDeps {
  counters(): HubStatusJson['hub'];
  status(): Promise<HubStatusJson>;
}

export class AdminServer {
  private server?: Server;

  constructor(
    private readonly path: string,
    private readonly deps: AdminDeps,
  ) {}

  async listen(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res).catch((err: unknown) => (res.headersSent ? res.destroy() : reply(res, 500, { error: (err as Error).message }))));
    this.server = server;
    await listenPrivate(server, this.path);
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    rmSync(this.path, { force: true });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET' && req.url === '/v1/stats') return reply(res, 200, { hub: this.deps.counters() });
    if (req.method === 'GET' && req.url === '/v1/status') return reply(res, 200, await this.deps.status());
    reply(res, 404, { error: 'not found' });
  }
}
