import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentSocketPath } from '../../../src/agent/socket-path.js';
import { run } from '../../../src/core/exec.js';
import { serviceCommands } from '../../../src/core/systemd/syntax.js';
import { uapiSocketPath } from '../../../src/core/wireguard/uapi.js';
import type { Lab } from '../../../src/lab/lab.js';
import { pidsIn } from '../../../src/lab/netns.js';
import { Scenario } from '../../../src/lab/scenario.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

/** Starts a host's service as systemd would: the unit's environment, each ExecStartPre in order ("-": failure ignored), then ExecStart. */
async function startUnit(lab: Lab, host: string, what: string, unitText: string): Promise<number> {
  const c = serviceCommands(unitText);
  const env = { ...process.env, ...c.env, WGP2P_LOG: process.env.WGP2P_LOG ?? 'info' };
  for (const pre of c.startPre) {
    const r = await lab.exec(host, pre.argv[0], pre.argv.slice(1), { env, allowFail: true, timeoutMs: 30_000 });
    if (r.code !== 0 && !pre.ignoreFailure) throw new Error(`${host}: ExecStartPre ${pre.argv.join(' ')} failed (${r.code}): ${r.stderr}`);
  }
  return lab.spawn(host, what, c.start.argv[0], c.start.argv.slice(1), env);
}

/**
 * A power cut and a boot, as far as the host's own state goes: every process in its namespace is
 * killed at once (no SIGTERM, nothing cleans up), its WireGuard interfaces go, and so does what
 * lives in /run (a tmpfs: wireguard-go's UAPI sockets, the agent's socket). Files in the node's
 * directories stay, sockets included, as they would on disk.
 */
async function powerCut(lab: Lab, host: string, ifnames: string[]): Promise<void> {
  for (const pid of await pidsIn(lab.ns(host))) {
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
  for (let i = 0; i < 100 && (await pidsIn(lab.ns(host))).some((p) => p !== process.pid); i++) await new Promise((r) => setTimeout(r, 50));
  for (const ifname of ifnames) {
    await run('ip', ['-n', lab.ns(host), 'link', 'delete', 'dev', ifname], { allowFail: true });
    rmSync(uapiSocketPath(ifname), { force: true });
    rmSync(agentSocketPath(ifname), { force: true });
  }
}

test('after a reboot of a joined device and its hub, their units bring both back and the device is direct with its peer again (issue 10, "a reboot must bring everything back")', async () => {
  await withLab(
    {
      name: uniqueLabName('boot'),
      routers: [
        { name: 'home', profile: 'restricted', wan: '203.0.113.10', lan: '192.168.10.0/24' },
        { name: 'cafe', profile: 'restricted', wan: '203.0.113.20', lan: '192.168.20.0/24' },
      ],
      hosts: [
        { name: 'hub', network: 'internet', address: '203.0.113.2' },
        { name: 'device', network: 'home', address: '192.168.10.2' },
        { name: 'peer', network: 'cafe', address: '192.168.20.2' },
      ],
    },
    async (lab) => {
      const s = new Scenario(lab);
      await s.initHub();
      // The peer is another agent; it keeps running through the device's and the hub's reboot.
      await s.addNode('laptop', 'agent', 'peer');
      await s.startAgent('laptop');

      // The device joins with --service: the unit is installed and nothing keeps running.
      const ifname = s.ifname('devic');
      const deviceDir = join(lab.logDir, 'device-etc-wgp2p');
      const units = join(lab.logDir, 'device-systemd');
      await lab.recordWireGuard('device', ifname);
      const joined = await s.cli('device', ['join', '--code-file', s.codeFile('device', await s.joinCode('device')), '--interface', ifname, '--dir', deviceDir, '--service', '--systemd-dir', units]);
      assert.match(joined.stdout, new RegExp(`systemctl daemon-reload && systemctl enable --now wgp2p-agent@${ifname}\\.service`));
      const deviceUnit = readFileSync(join(units, `wgp2p-agent@${ifname}.service`), 'utf8');
      assert.deepEqual(serviceCommands(deviceUnit).startPre.at(-1)!.argv.slice(1), ['up', join(deviceDir, `${ifname}.conf`)], 'the interface comes up from the file join wrote');

      // The hub's unit as "wgp2p service hub" writes it, for the wg-quick file the lab brought up
      // (wireguard-go's sockets are machine-wide, so the lab's hub interface has a lab-unique name).
      const hubConf = join(lab.logDir, 'conf', 'hub', `${s.hubIf}.conf`);
      const hubUnit = (await s.cli(undefined, ['service', 'hub', '--dir', s.dir, '--conf', hubConf])).stdout;

      // "systemctl enable --now": the interface join left up is taken down and brought up again.
      await startUnit(lab, 'device', 'unit-agent', deviceUnit);
      await s.waitPath('device', 'laptop', 'direct', 30_000);
      const address = (await s.hubStatus()).nodes.find((n) => n.name === 'device')!.address.replace(/\/\d+$/, '');
      await msUntilPingReply(lab.ns('peer'), address, 15_000);

      await powerCut(lab, 'hub', [s.hubIf]);
      await powerCut(lab, 'device', [ifname]);
      const dead = await run('ping', ['-n', '-q', '-c', '1', '-w', '1', address], { netns: lab.ns('peer'), allowFail: true });
      assert.notEqual(dead.code, 0, 'the device is really down');

      // Boot: each unit's ExecStartPre and ExecStart, as written.
      await startUnit(lab, 'hub', 'unit-hub', hubUnit);
      await startUnit(lab, 'device', 'unit-agent-boot', deviceUnit);
      await s.waitPath('device', 'laptop', 'direct', 45_000);
      await msUntilPingReply(lab.ns('peer'), address, 15_000);
    },
  );
});
