import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { adminGet } from '../../../src/core/admin-socket.js';
import { Scenario } from '../../../src/lab/scenario.js';
import { behindRouters } from '../../../src/lab/topologies.js';
import { uniqueLabName, withLab } from '../helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How long the hub is abused for; the pings and status readings run throughout. */
const ABUSE_MS = 20_000;
const API = 'http://10.99.0.1:51821';

/** A plain client hammering the control API from its tunnel address: 40 requests at a time, each on a new connection. */
const FLOOD = `
const http = require('node:http');
const until = Date.now() + Number(process.argv[2]);
const counts = {};
let errors = 0;
function one() {
  if (Date.now() > until) return Promise.resolve();
  return new Promise((done) => {
    const req = http.get(process.argv[3] + '/v1/peers', { agent: false, timeout: 3000 }, (res) => {
      counts[res.statusCode] = (counts[res.statusCode] || 0) + 1;
      res.resume();
      res.on('end', done);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => { errors++; setTimeout(done, 20); });
  }).then(one);
}
Promise.all(Array.from({ length: 40 }, one)).then(() => console.log(JSON.stringify({ counts, errors })));
`;

/** An agent (its own tunnel and token) sending malformed, binary, over-budget and oversized messages, reconnecting each time the hub hangs up. */
const ABUSER = `
const WebSocket = require(process.argv[4]);
const { token } = JSON.parse(require('node:fs').readFileSync(process.argv[3], 'utf8'));
const until = Date.now() + Number(process.argv[2]);
const stats = { opens: 0, closes: 0, sent: 0 };
function round() {
  if (Date.now() > until) { console.log(JSON.stringify(stats)); return; }
  const ws = new WebSocket(process.argv[5].replace(/^http/, 'ws') + '/v1/agent', { headers: { authorization: 'Bearer ' + token } });
  ws.on('error', () => undefined);
  ws.on('open', () => {
    stats.opens++;
    for (let i = 0; i < 20; i++) ws.send(['{', '{"type":"nope"}', '{"type":"report","peers":"x"}', 'null', '[]'][i % 5]);
    ws.send(Buffer.alloc(1024, 7));
    ws.send('"' + 'x'.repeat(2 << 20) + '"');
    stats.sent += 22;
    // Past the hub's 4 MiB limit: it ends the connection.
    setTimeout(() => ws.readyState === 1 && ws.send('x'.repeat(5 << 20)), 300);
  });
  ws.on('close', () => { stats.closes++; setTimeout(round, 700); });
}
round();
`;

test('abuse: the hub keeps serving a direct and a relayed pair and answers status while the API is flooded, an agent sends garbage, an endpoint flaps and a relay restarts', { timeout: 240_000 }, async (t) => {
  await withLab(
    behindRouters(uniqueLabName('abuse'), [
      { host: 'a1', router: 'home1' },
      { host: 'a2', router: 'home2' },
      { host: 's1', router: 'mob1', profile: 'symmetric' },
      { host: 's2', router: 'mob2', profile: 'symmetric' },
      { host: 'a3', router: 'home3' },
      { host: 'm', router: 'home3' },
      { host: 'c', router: 'home3' },
    ], { publicHosts: ['r1'] }),
    async (lab) => {
      const s = new Scenario(lab);
      await s.initHub();
      for (const n of ['a1', 'a2', 'a3']) await s.addNode(n, 'agent', n);
      for (const n of ['s1', 's2']) await s.addNode(n, 'agent', n, ['--groups', 'sym']);
      await s.addNode('m', 'agent', 'm', ['--groups', 'abuse']);
      await s.addNode('c', 'client', 'c');
      for (const n of ['a1', 'a2', 'a3', 's1', 's2']) await s.startAgent(n);
      await s.waitPath('a1', 'a2', 'direct');
      // The symmetric pair takes the hub's own relay; the remote relay comes after, carries nothing, and restarts.
      await s.waitPath('s1', 's2', 'relay', 20_000);
      const relay = await s.startRelay('rly1', 'r1');
      // The abusing agent has its tunnel and token but runs no agent; the client only needs its tunnel to the hub.
      await s.upConf('m', join(s.dir, 'nodes', 'm.conf'), s.nodes.get('m')!.ifname);
      await s.startClient('c', { proxied: true });
      const hubPid = s.hubPid!;

      // The same reading on the idle hub, to tell the abuse's cost from the machine's.
      const idle: number[] = [];
      for (let i = 0; i < 10; i++) {
        const t0 = performance.now();
        await adminGet(join(s.dir, 'hub.sock'), '/v1/status');
        idle.push(performance.now() - t0);
        await sleep(100);
      }
      idle.sort((x, y) => x - y);

      const scripts = { flood: join(lab.logDir, 'flood.cjs'), abuser: join(lab.logDir, 'abuser.cjs') };
      writeFileSync(scripts.flood, FLOOD);
      writeFileSync(scripts.abuser, ABUSER);
      const wsModule = createRequire(import.meta.url).resolve('ws');
      const end = Date.now() + ABUSE_MS;

      const seconds = String(ABUSE_MS / 1000);
      const ping = (from: string, to: string) => lab.exec(from, 'ping', ['-n', '-q', '-i', '0.2', '-w', seconds, s.nodes.get(to)!.address], { allowFail: true, timeoutMs: ABUSE_MS + 10_000 });
      const received = (out: string) => ({ sent: Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? 0), got: Number(/(\d+) received/.exec(out)?.[1] ?? 0) });

      // (c) a3's endpoint flaps: a new source port every second, so the hub sees it move and re-decides its pairs.
      const flap = (async () => {
        let moves = 0;
        for (let port = 40100; Date.now() < end; port++, moves++) {
          await lab.exec('a3', 'wg', ['set', s.nodes.get('a3')!.ifname, 'listen-port', String(port)]);
          await sleep(1000);
        }
        return moves;
      })();
      // (d) the remote relay dies and comes back every 5 s.
      const restarts = (async () => {
        let pid = relay.pid!;
        let n = 0;
        while (Date.now() + 5000 < end) {
          await sleep(4000);
          process.kill(pid, 'SIGKILL');
          await sleep(300);
          pid = lab.spawn('r1', `relay-rly1-${++n}`, process.execPath, [join(import.meta.dirname, '../../../src/cli/main.js'), 'relay', 'run', '--config', join(s.dir, 'nodes', 'rly1.relay.json'), '--address', lab.address('r1'), '--ports', '53000-53099']);
        }
        return n;
      })();
      // `status --json` reads the admin socket: how long each answer took, every 200 ms throughout.
      const status = (async () => {
        const took: number[] = [];
        let failed = 0;
        while (Date.now() < end) {
          const t0 = performance.now();
          await adminGet(join(s.dir, 'hub.sock'), '/v1/status').catch(() => failed++);
          took.push(performance.now() - t0);
          await sleep(200);
        }
        return { took, failed };
      })();

      const [direct, relayed, flood, abuse, moves, relayRestarts, st] = await Promise.all([
        ping('a1', 'a2'),
        ping('s1', 's2'),
        lab.exec('c', process.execPath, [scripts.flood, String(ABUSE_MS), API], { allowFail: true, timeoutMs: ABUSE_MS + 15_000 }),
        lab.exec('m', process.execPath, [scripts.abuser, String(ABUSE_MS), join(s.dir, 'nodes', 'm.agent.json'), wsModule, API], { allowFail: true, timeoutMs: ABUSE_MS + 15_000 }),
        flap,
        restarts,
        status,
      ]);

      const sorted = [...st.took].sort((x, y) => x - y);
      const pct = (p: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]);
      t.diagnostic(`status: ${sorted.length} readings, median ${pct(0.5)} ms, p95 ${pct(0.95)} ms, max ${Math.round(sorted.at(-1) ?? 0)} ms (target 200 ms), ${st.failed} failed; idle hub before: median ${Math.round(idle[5])} ms, max ${Math.round(idle[9])} ms`);
      t.diagnostic(`direct a1-a2: ${JSON.stringify(received(direct.stdout))}; relayed s1-s2: ${JSON.stringify(received(relayed.stdout))}`);
      t.diagnostic(`flood from c: ${flood.stdout.trim()}; abusing agent m: ${abuse.stdout.trim()}; a3 moved ${moves} times; rly1 restarted ${relayRestarts} times`);

      // The abuse happened: the flood was answered (403: a plain client is no agent) and refused past its 8 connections, m got in and was thrown out.
      const f = JSON.parse(flood.stdout) as { counts: Record<string, number>; errors: number };
      assert.ok((f.counts['403'] ?? 0) > 0, `the flood reached the API: ${flood.stdout}`);
      const a = JSON.parse(abuse.stdout) as { opens: number; closes: number };
      assert.ok(a.opens >= 2 && a.closes >= 2, `the abusing agent connected and was disconnected for its oversized messages: ${abuse.stdout}`);
      assert.ok(moves >= 5 && relayRestarts >= 2);

      // What users rely on: both pairs kept passing traffic, status kept answering, the hub is up.
      for (const [name, r] of [['direct a1-a2', received(direct.stdout)], ['relayed s1-s2', received(relayed.stdout)]] as const) {
        assert.ok(r.sent >= 50, `${name}: ${r.sent} pings sent`);
        // A loaded 2-core machine loses a few; 10 % lost is a fault of the hub, not of the lab.
        assert.ok(r.got >= r.sent * 0.9, `${name}: ${r.got} of ${r.sent} pings answered`);
      }
      assert.equal(st.failed, 0, 'status answered every time');
      assert.ok(sorted.length >= 30, `${sorted.length} status readings`);
      // Generous for a shared 2-core machine; the diagnostic above has the figures against the 200 ms target.
      assert.ok((sorted.at(-1) ?? Infinity) < 2000, `status answered within 2 s every time (max ${Math.round(sorted.at(-1) ?? 0)} ms)`);
      process.kill(hubPid, 0);
      await s.waitFor(async () => ((await s.hubStatus()).relays ?? []).some((x) => x.name === 'rly1'), 15_000, 'the restarted relay to register again');
      await s.waitFor(async () => (await s.hubStatus()).nodes.some((x) => x.name === 'a3' && x.connected === true), 15_000, 'a3 to be connected after its flapping');
      const pairs = [await s.pair('a1', 'a2'), await s.pair('s1', 's2')];
      assert.deepEqual(pairs.map((p) => p?.mode), ['direct', 'relay'], 'both pairs kept their paths');
    },
  );
});
