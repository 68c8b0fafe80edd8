import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { serviceCommands } from '../../../src/core/systemd/syntax.js';

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
const wgp2p = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, WGP2P_LOG: 'silent' } });

test('hub init --service installs wgp2p-hub.service, which brings hub.conf up before "hub run" and holds no key (issue 10: the hub had no unit)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-svc-'));
  try {
    const hub = join(dir, 'hub');
    const units = join(dir, 'systemd');
    const r = wgp2p('hub', 'init', '--dir', hub, '--endpoint', '203.0.113.2:51820', '--address', '10.99.0.1/24', '--service', '--systemd-dir', units);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /systemctl daemon-reload && systemctl enable --now wgp2p-hub\.service/);
    const path = join(units, 'wgp2p-hub.service');
    const text = readFileSync(path, 'utf8');
    assert.equal(statSync(path).mode & 0o777, 0o644);
    const c = serviceCommands(text);
    assert.deepEqual(c.startPre.at(-1)!.argv.slice(1), ['up', join(hub, 'hub.conf')]);
    assert.deepEqual(c.start.argv.slice(2), ['hub', 'run', '--dir', hub, '--interface', 'hub']);
    const privateKey = /^PrivateKey\s*=\s*(\S+)/m.exec(readFileSync(join(hub, 'hub.conf'), 'utf8'))![1];
    assert.equal(text.includes(privateKey), false, 'the unit names hub.conf; the key stays in it');

    // Without --service it says how to get the unit; a directory a unit cannot name is refused before anything is made.
    const plain = wgp2p('hub', 'init', '--dir', join(dir, 'hub2'), '--endpoint', '203.0.113.2:51820', '--address', '10.99.0.1/24');
    assert.match(plain.stdout, new RegExp(`wgp2p service hub --dir ${join(dir, 'hub2')} --install`));
    const spaced = wgp2p('hub', 'init', '--dir', join(dir, 'my hub'), '--endpoint', '203.0.113.2:51820', '--address', '10.99.0.1/24', '--service', '--systemd-dir', units);
    assert.notEqual(spaced.status, 0);
    assert.match(spaced.stderr, /--dir ".*my hub" has a character a systemd unit would read differently/);
    assert.equal(existsSync(join(dir, 'my hub')), false);

    // node add --relay and --agent print what to run on that machine to start it at every boot.
    const relay = wgp2p('node', 'add', 'relay1', '--relay', '--dir', hub);
    assert.equal(relay.status, 0, relay.stderr);
    assert.match(relay.stdout, /copy relay1\.conf and relay1\.relay\.json to \/etc\/wgp2p\/ \(mode 0600\).*\n  wgp2p service relay --name relay1 --address PUBLIC_IP --install/);
    const agent = wgp2p('node', 'add', 'device', '--agent', '--dir', hub);
    assert.match(agent.stdout, /wgp2p service agent --name device --install/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('wgp2p service agent prints the unit, or installs wgp2p-agent@IF.service that brings IF up from --dir (issue 10: join\'s unit waited for wg-quick@IF, which reads /etc/wireguard)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-svc-'));
  try {
    const printed = wgp2p('service', 'agent', '--name', 'laptop', '--interface', 'wgl', '--dir', '/etc/wgp2p');
    assert.equal(printed.status, 0, printed.stderr);
    const c = serviceCommands(printed.stdout);
    assert.deepEqual(c.startPre.at(-1)!.argv.slice(1), ['up', '/etc/wgp2p/wgl.conf']);
    assert.deepEqual(c.start.argv.slice(2), ['agent', 'run', '--config', '/etc/wgp2p/laptop.agent.json', '--interface', 'wgl']);
    const installed = wgp2p('service', 'agent', '--name', 'laptop', '--dir', '/etc/wgp2p', '--install', '--systemd-dir', dir);
    assert.match(installed.stdout, /systemctl enable --now wgp2p-agent@laptop\.service/);
    assert.equal(readFileSync(join(dir, 'wgp2p-agent@laptop.service'), 'utf8'), wgp2p('service', 'agent', '--name', 'laptop').stdout);
    const relay = wgp2p('service', 'relay', '--name', 'relay1', '--address', '10.0.0.1');
    assert.notEqual(relay.status, 0);
    assert.match(relay.stderr, /--address/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
