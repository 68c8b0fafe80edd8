import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { adminGet } from '../../../src/core/admin-socket.js';
import { hubStatusSchema } from '../../../src/core/status.js';
import { Scenario } from '../../../src/lab/scenario.js';
import { behindRouters } from '../../../src/lab/topologies.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

/**
 * Issue 10, finding 2, end to end: another process holds the hub store's write lock while an
 * agent roams. The old hub waited out SQLite's 5 s busy_timeout inside each endpoint write,
 * frozen; now the roam reaches the pair, the hub keeps answering, status says the store is
 * degraded, and the endpoint reaches the store once the lock is gone.
 */
test('a roam while another process holds the store lock: the pair follows at once, the hub keeps answering, status says degraded, the store catches up (issue 10, finding 2)', async (t) => {
  await withLab(
    behindRouters(uniqueLabName('hstore'), [
      { host: 'laptop', router: 'home' },
      { host: 'server', router: 'office' },
    ], { empty: [{ router: 'cafe' }] }),
    async (lab) => {
      const s = new Scenario(lab);
      const [, server] = await s.directPair('laptop', 'server');
      const sock = join(s.dir, 'hub.sock');
      const status = async () => hubStatusSchema.parse(await adminGet<unknown>(sock, '/v1/status'));
      const endpointSeen = async () => (await status()).nodes.find((n) => n.name === 'laptop')!.endpoint;
      const stored = async () => (JSON.parse((await s.cli(undefined, ['node', 'list', '--dir', s.dir, '--json'])).stdout) as { name: string; endpoints: string[] }[]).find((n) => n.name === 'laptop')!.endpoints;
      const before = await endpointSeen();
      assert.ok(before && (await stored()).includes(before), 'the store has the laptop where the hub saw it');

      // A stuck CLI command, a backup tool: another connection holds the write lock.
      const other = new Database(join(s.dir, 'hub.sqlite'));
      other.exec('BEGIN IMMEDIATE');
      let slowest = 0;
      const ask = async () => {
        const t0 = performance.now();
        const st = await status();
        slowest = Math.max(slowest, performance.now() - t0);
        return st;
      };
      try {
        await lab.moveHost('laptop', 'cafe', undefined, { rebind: false });
        let after: string | null = null;
        await s.waitFor(async () => {
          after = (await ask()).nodes.find((n) => n.name === 'laptop')!.endpoint;
          return after !== null && after !== before;
        }, 15_000, 'the hub to see the laptop at its new endpoint');
        // Both routers filter by address: direct again means the hub told the server where the laptop is now.
        await s.waitPath('laptop', 'server', 'direct', 15_000);
        await msUntilPingReply(lab.ns('laptop'), server.address, 5000);
        assert.equal((await s.endpointOn(server.ifname, await s.publicKey('laptop')))?.split(':')[0], after!.split(':')[0], "the server's device has the laptop at its new address");
        await s.waitFor(async () => (await ask()).hub.store?.state === 'degraded', 10_000, 'status to say the store is degraded');
        // Keep asking across the writer's first retries (1 s, 2 s): each one used to freeze the hub for 5 s.
        for (let i = 0; i < 40; i++) {
          await ask();
          await new Promise((r) => setTimeout(r, 100));
        }
        const st = await ask();
        assert.equal(st.hub.store?.state, 'degraded');
        assert.ok((st.hub.store?.pendingWrites ?? 0) >= 1);
        assert.match(st.hub.store?.lastError ?? '', /locked by another wgp2p process/);
        const table = (await s.cli(undefined, ['status', '--dir', s.dir])).stdout;
        assert.match(table, /store: degraded for .* \(\d+ writes pending, last error: the hub store .* is locked/);
        assert.deepEqual(await stored(), [before], 'the store still has the old endpoint while it is locked');
        t.diagnostic(`hub status answered within ${slowest.toFixed(0)} ms at worst while the store was locked; new endpoint ${after}`);
        assert.ok(slowest < 500, `the hub answered within ${slowest.toFixed(0)} ms at worst (the old hub froze 5 s per write)`);
      } finally {
        if (other.inTransaction) other.exec('COMMIT');
        other.close();
      }
      const now = await endpointSeen();
      // The writer's backoff has reached 8 s or 16 s by now; it caps at 30 s.
      await s.waitFor(async () => (await stored()).includes(now!), 40_000, 'the store to catch up');
      assert.equal((await status()).hub.store?.state, 'ok');
      assert.doesNotMatch((await s.cli(undefined, ['status', '--dir', s.dir])).stdout, /store: degraded/);
    },
  );
});
