import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeJoinCode, encodeJoinCode } from '../../../src/core/join-code.js';
import { ENROL_RETIRE_MS } from '../../../src/hub/peer-sync.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import { Scenario } from '../../../src/lab/scenario.js';
import { uniqueLabName, withLab } from '../helpers.js';

test('join codes: a device enrols with its own key and goes direct; bad codes are refused and change nothing', async () => {
  await withLab(
    {
      name: uniqueLabName('join'),
      routers: [
        { name: 'home', profile: 'restricted', wan: '203.0.113.10', lan: '192.168.10.0/24' },
        { name: 'cafe', profile: 'restricted', wan: '203.0.113.20', lan: '192.168.20.0/24' },
        { name: 'other', profile: 'restricted', wan: '203.0.113.30', lan: '192.168.30.0/24' },
      ],
      hosts: [
        { name: 'hub', network: 'internet', address: '203.0.113.2' },
        { name: 'device', network: 'home', address: '192.168.10.2' },
        { name: 'client', network: 'cafe', address: '192.168.20.2' },
        { name: 'intruder', network: 'other', address: '192.168.30.2' },
      ],
    },
    async (lab) => {
      const s = new Scenario(lab);
      await s.initHub();
      const code = await s.joinCode('device');
      const tryJoin = async (host: string, text: string) => {
        const dir = join(lab.logDir, 'attempt', host, String(Date.now()));
        const r = await s.cli(host, ['join', '--code-file', s.codeFile(host, text), '--interface', 'wgjt', '--dir', dir], { allowFail: true });
        const created = existsSync(dir) ? readdirSync(dir) : [];
        return { code: r.code, stderr: r.stderr, created };
      };

      // Malformed, and a code that names another hub's key: refused, nothing written.
      const bad = await tryJoin('intruder', code.slice(0, -5));
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /join code is damaged|not a wgp2p join code/);
      const forged = encodeJoinCode({ ...decodeJoinCode(code), hubPublicKey: generateKeyPair().publicKey });
      const mitm = await tryJoin('intruder', forged);
      assert.notEqual(mitm.code, 0);
      assert.match(mitm.stderr, /no WireGuard handshake with the hub .* not the hub this code names/);
      assert.deepEqual(mitm.created, []);

      // The real join: the device makes its key; the hub never sees the private half.
      const device = await s.join('device', 'device', code);
      const cfg = await s.cli(undefined, ['node', 'config', 'device', '--dir', s.dir], { allowFail: true });
      assert.match(cfg.stderr, /made its own key when it joined/);

      // The same code again, at once: within the 5 s grace the hub still answers on its key (a
      // lost reply can be retried) and refuses to enrol anyone else with it; a join slower than
      // the grace (a loaded machine) finds the key gone. Either way: refused, nothing written.
      const joinedAt = Date.now();
      const early = await tryJoin('intruder', code);
      assert.notEqual(early.code, 0);
      assert.match(early.stderr, /this join code was already used|no WireGuard handshake with the hub .* no longer accepts this code/);
      assert.deepEqual(early.created, []);
      // Once the grace is over its key is nobody's peer, so the hub does not answer it at all.
      await new Promise((r) => setTimeout(r, Math.max(0, joinedAt + ENROL_RETIRE_MS + 1500 - Date.now())));
      const reused = await tryJoin('intruder', code);
      assert.notEqual(reused.code, 0);
      assert.match(reused.stderr, /no WireGuard handshake with the hub .* no longer accepts this code/);
      assert.deepEqual(reused.created, []);

      // An expired code.
      const short = await s.joinCode('late', '1s');
      await new Promise((r) => setTimeout(r, 1500));
      const expired = await tryJoin('intruder', short);
      assert.match(expired.stderr, /expired/);
      assert.deepEqual(expired.created, []);

      // And the joined device works: a plain client reaches it directly.
      await s.addNode('phone', 'client', 'client');
      await s.startClient('phone', { pingTarget: device.address });
    },
  );
});
