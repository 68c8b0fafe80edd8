import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { publicKeyOf } from '../../../src/core/wireguard/keys.js';
import { HUB_TUNNEL, Scenario } from '../../../src/lab/scenario.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

/**
 * `wgp2p join` from networks that block UDP (issue 12): behind `udp-blocked` (TCP 80/443 only)
 * and behind `http-proxy` (nothing but an HTTP proxy that CONNECTs to 443). The join must
 * complete over the stream: its one-time tunnel's WireGuard handshake and the enrolment request
 * ride TLS to the hub's TCP 443, so the enrolment reply arriving is the proof that the hub peer
 * worked through the stream.
 *
 * Then the agent that `join` runs chooses its own transport (agent/hub-transport.ts): its hub
 * peer moves to the stream too, and the hub's tunnel address answers pings.
 */

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function joinFrom(profile: 'restricted' | 'udp-blocked' | 'http-proxy'): Promise<void> {
  await withLab(
    {
      name: uniqueLabName('tcpjoin'),
      routers: [{ name: 'net', profile, wan: '203.0.113.10', lan: '192.168.10.0/24' }],
      hosts: [
        { name: 'hub', network: 'internet', address: '203.0.113.2' },
        { name: 'device', network: 'net', address: '192.168.10.2' },
      ],
    },
    async (lab) => {
      const s = new Scenario(lab);
      await s.initHub();
      // What the network lets through before wgp2p is involved: the others pass TCP 443 straight;
      // behind the proxy nothing goes straight, and the proxy is in the device's HTTPS_PROXY.
      const tcp = await lab.exec('device', 'timeout', ['3', 'bash', '-c', 'exec 3<>/dev/tcp/203.0.113.2/443'], { allowFail: true });
      assert.equal(tcp.code === 0, profile !== 'http-proxy', `direct TCP to the hub's 443 from behind ${profile}: exit ${tcp.code}`);
      assert.equal(s.envOf('device').HTTPS_PROXY, profile === 'http-proxy' ? 'http://192.168.10.1:3128' : undefined);

      const code = await s.joinCode('device');
      const ifname = s.ifname('devic');
      const dir = join(lab.logDir, 'device', 'device');
      await lab.recordWireGuard('device', ifname);
      const log = join(lab.logDir, 'device.join-device.log');
      const t0 = performance.now();
      lab.spawn('device', 'join-device', process.execPath, [CLI, 'join', '--code-file', s.codeFile('device', code), '--interface', ifname, '--dir', dir], s.envOf('device'));
      const read = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
      for (const end = performance.now() + 30_000; !/joined as device|Error|error:/.test(read()) && performance.now() < end; ) await sleep(100);
      const out = read();
      const joinMs = Math.round(performance.now() - t0);
      if (profile === 'restricted') {
        // UDP works: the stream, opened beside it, is not what the join uses.
        assert.match(out, /joined as device over UDP \(203\.0\.113\.2:51820, handshake in \d+ ms\)/, out);
        assert.doesNotMatch(out, /trying TLS/, out);
        process.stderr.write(`stream-join ${profile}: joined over UDP in ${joinMs} ms\n${out}\n`);
        return;
      }
      assert.match(out, /joined as device over the stream \(TLS to 203\.0\.113\.2:443/, out);
      assert.match(out, /no handshake by UDP to 203\.0\.113\.2:51820 within 2\.0 s; trying TLS over TCP to 203\.0\.113\.2:443/, out);
      if (profile === 'http-proxy') assert.match(out, /through the HTTP proxy 192\.168\.10\.1:3128/, out);
      else assert.doesNotMatch(out, /proxy/, out);

      // The device's files are written, 0600, with the stream side's pin for the agent.
      const conf = join(dir, `${ifname}.conf`);
      const agentJson = join(dir, 'device.agent.json');
      for (const f of [conf, agentJson]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
      const agent = JSON.parse(readFileSync(agentJson, 'utf8')) as { name: string; stream?: { port: number; pin: string }; hubEndpoints: string[] };
      assert.equal(agent.name, 'device');
      assert.equal(agent.stream?.port, 443);
      assert.deepEqual(agent.hubEndpoints, ['203.0.113.2:51820']);

      // The hub lists the node with the key the device made for itself.
      const privateKey = /^PrivateKey\s*=\s*(\S+)/m.exec(readFileSync(conf, 'utf8'))?.[1];
      assert.ok(privateKey);
      const list = JSON.parse((await s.cli(undefined, ['node', 'list', '--dir', s.dir, '--json'])).stdout) as { name: string; publicKey: string }[];
      assert.equal(list.find((n) => n.name === 'device')?.publicKey, publicKeyOf(privateKey));
      process.stderr.write(`stream-join ${profile}: joined over the stream in ${joinMs} ms (from the spawn of wgp2p join to its last line)\n${out}\n`);
      // The enrolled agent's own hub peer rides the stream as well: the hub answers through it.
      const pingMs = await msUntilPingReply(lab.ns('device'), HUB_TUNNEL, 20_000);
      process.stderr.write(`stream-join ${profile}: the hub's tunnel address answered ${pingMs} ms after the join's last line\n`);

      // The same code again from this network: the stream side refuses it with the words of the
      // enrolment API, and nothing is written.
      const again = join(lab.logDir, 'again');
      const reused = await s.cli('device', ['join', '--code-file', s.codeFile('again', code), '--interface', 'wgjt', '--dir', again], { allowFail: true });
      assert.notEqual(reused.code, 0);
      assert.match(reused.stderr, /this join code was already used \(node "device" is enrolled\); ask for a new one/, reused.stderr + reused.stdout);
      assert.ok(!existsSync(join(again, 'wgjt.conf')) && !existsSync(join(again, 'device.agent.json')));
    },
  );
}

describe('stream-join: wgp2p join from networks that block UDP', () => {
  test('stream-join: behind a home router that passes UDP, the join uses UDP', async () => {
    await joinFrom('restricted');
  });

  test('stream-join: behind udp-blocked, the join completes over TLS on TCP 443', async () => {
    await joinFrom('udp-blocked');
  });

  test('stream-join: behind an HTTP proxy (CONNECT to 443 only, found through HTTPS_PROXY), the join completes through it', async () => {
    await joinFrom('http-proxy');
  });
});
