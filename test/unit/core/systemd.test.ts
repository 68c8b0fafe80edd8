import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { thisPrograms } from '../../../src/cli/service.js';
import { execWord, parseExec, serviceCommands, splitWords, UnitSyntaxError } from '../../../src/core/systemd/syntax.js';
import { agentUnit, hubUnit, relayUnit, type Programs, type Unit } from '../../../src/core/systemd/units.js';

const P: Programs = { node: '/usr/bin/node', cli: '/usr/lib/wgp2p/dist/src/cli/main.js', wgQuick: '/usr/bin/wg-quick' };

/** The [Service] lines of a unit whose key is `key`. */
const lines = (u: Unit, key: string) => u.text.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));

test('the agent unit brings IF up from wgp2p\'s own IF.conf (not wg-quick@IF, which reads /etc/wireguard) and runs the agent with NAME.agent.json (issue 10, reboot)', () => {
  const u = agentUnit(P, { name: 'laptop', ifname: 'wg-laptop', dir: '/etc/wgp2p' });
  assert.equal(u.name, 'wgp2p-agent@wg-laptop.service');
  const c = serviceCommands(u.text);
  assert.deepEqual(c.startPre.at(-1), { ignoreFailure: false, argv: ['/usr/bin/wg-quick', 'up', '/etc/wgp2p/wg-laptop.conf'] }, 'the interface comes up before the agent, from the file join wrote');
  assert.deepEqual(c.startPre[0], { ignoreFailure: true, argv: ['/usr/bin/wg-quick', 'down', '/etc/wgp2p/wg-laptop.conf'] }, 'a left-over interface does not make "up" fail');
  assert.deepEqual(c.start.argv, ['/usr/bin/node', P.cli, 'agent', 'run', '--config', '/etc/wgp2p/laptop.agent.json', '--interface', 'wg-laptop']);
  assert.deepEqual(c.stopPost, [{ ignoreFailure: true, argv: ['/usr/bin/wg-quick', 'down', '/etc/wgp2p/wg-laptop.conf'] }]);
  assert.doesNotMatch(u.text, /wg-quick@/);
  assert.deepEqual(lines(u, 'Restart'), ['always']);
  assert.deepEqual(lines(u, 'RestartSec'), ['2']);
  assert.deepEqual(lines(u, 'UMask'), ['0077']);
  assert.deepEqual(lines(u, 'ConfigurationDirectory'), ['wgp2p']);
  assert.deepEqual(lines(u, 'ConfigurationDirectoryMode'), ['0700']);
  assert.deepEqual(lines(u, 'After'), ['network-online.target nss-lookup.target']);
  assert.equal(c.env.WG_QUICK_USERSPACE_IMPLEMENTATION, 'wireguard-go', 'wg-quick falls back to wireguard-go where the kernel has no WireGuard');
});

test('the hub unit brings hub.conf up and runs "hub run" on the interface named after it; the relay unit runs "relay run" with its options', () => {
  const h = serviceCommands(hubUnit(P, { dir: '/var/lib/wgp2p/', noRelay: true, relayAddresses: ['2001:DB8::7'] }).text);
  assert.deepEqual(h.startPre.at(-1)!.argv, ['/usr/bin/wg-quick', 'up', '/var/lib/wgp2p/hub.conf']);
  assert.deepEqual(h.start.argv.slice(2), ['hub', 'run', '--dir', '/var/lib/wgp2p', '--interface', 'hub', '--no-relay', '--relay-address', '2001:db8::7']);
  assert.match(hubUnit(P, { dir: '/var/lib/wgp2p' }).text, /^StateDirectory=wgp2p\nStateDirectoryMode=0700$/m);
  assert.deepEqual(serviceCommands(hubUnit(P, { dir: '/srv/hub', conf: '/srv/wg/edge.conf' }).text).start.argv.slice(-2), ['--interface', 'edge']);
  const r = relayUnit(P, { name: 'relay1', dir: '/etc/wgp2p', addresses: ['198.51.100.7', '2001:db8::7'], ports: [52000, 52999], userspace: true });
  assert.equal(r.name, 'wgp2p-relay@relay1.service');
  const rc = serviceCommands(r.text);
  assert.deepEqual(rc.startPre.at(-1)!.argv, ['/usr/bin/wg-quick', 'up', '/etc/wgp2p/relay1.conf']);
  assert.deepEqual(rc.start.argv.slice(2), ['relay', 'run', '--config', '/etc/wgp2p/relay1.relay.json', '--address', '198.51.100.7', '--address', '2001:db8::7', '--ports', '52000-52999', '--userspace']);
});

test('a path or name a unit would read differently is refused, naming the option and what to do', () => {
  const bad: [() => unknown, RegExp][] = [
    [() => agentUnit(P, { name: 'laptop', ifname: 'laptop', dir: '/etc/my wgp2p' }), /--dir "\/etc\/my wgp2p" has a character .* use only letters, digits and _ \. - \//],
    [() => agentUnit(P, { name: 'laptop', ifname: 'laptop', dir: '/etc/wg%ip' }), /--dir .* has a character/],
    [() => agentUnit(P, { name: 'laptop', ifname: 'laptop', dir: '/etc/$HOME' }), /--dir .* has a character/],
    [() => agentUnit(P, { name: 'laptop', ifname: 'laptop', dir: '/etc/a;b' }), /--dir .* has a character/],
    [() => agentUnit(P, { name: 'laptop', ifname: 'laptop', dir: '/etc/a\nExecStart=/bin/sh' }), /--dir [\s\S]* has a character/],
    [() => agentUnit(P, { name: 'laptop', ifname: 'laptop', dir: 'etc/wgp2p' }), /--dir "etc\/wgp2p" must be an absolute path/],
    [() => agentUnit(P, { name: 'laptop', ifname: 'laptop', dir: '/etc/../root' }), /has a "\." or "\.\." part/],
    [() => agentUnit(P, { name: 'laptop', ifname: 'wg+1', dir: '/etc/wgp2p' }), /--interface "wg\+1" cannot name an interface in a systemd unit: 1-15 letters/],
    [() => agentUnit(P, { name: 'laptop', ifname: 'a'.repeat(16), dir: '/etc/wgp2p' }), /--interface/],
    [() => agentUnit(P, { name: 'lap/top', ifname: 'laptop', dir: '/etc/wgp2p' }), /the node name "lap\/top"/],
    [() => agentUnit({ ...P, node: '/opt/my node/bin/node' }, { name: 'laptop', ifname: 'laptop', dir: '/etc/wgp2p' }), /node "\/opt\/my node\/bin\/node" has a character/],
    [() => hubUnit(P, { dir: '/etc/wgp2p', conf: '/etc/wgp2p/hub.cfg' }), /--conf .* must end in \.conf/],
    [() => relayUnit(P, { name: 'relay1', dir: '/etc/wgp2p', addresses: ['198.51.100.7; rm'] }), /--address "198\.51\.100\.7; rm" is not an IP address/],
    [() => relayUnit(P, { name: 'relay1', dir: '/etc/wgp2p', addresses: [] }), /--address is required/],
    [() => relayUnit(P, { name: 'relay1', dir: '/etc/wgp2p', addresses: ['198.51.100.7'], ports: [9, 2] }), /--ports 9-2 is not a range/],
  ];
  for (const [fn, message] of bad) assert.throws(fn, (err: unknown) => err instanceof UnitSyntaxError && message.test(err.message), String(message));
});

test('a command word is escaped per systemd.syntax so systemd reads back exactly that argument', () => {
  for (const w of ['plain', 'a b', '50%', '%i', '$HOME', '${X}', 'x"y', "it's", 'back\\slash', ';', '', '--opt=a,b', '[2001:db8::1]:5']) {
    assert.deepEqual(splitWords(`/bin/x ${execWord(w)}`), ['/bin/x', w], JSON.stringify(w));
  }
  assert.equal(execWord('50%'), '50%%');
  assert.equal(execWord('$HOME'), '$$HOME');
  assert.equal(execWord(';'), '\\;');
  assert.throws(() => execWord('a\nb'), /control character/);
  assert.throws(() => parseExec('/bin/a ; /bin/b'), /several commands/);
  assert.throws(() => splitWords('/bin/x %i'), /specifier or variable/);
});

test('the hub, relay and agent units pass systemd-analyze verify (Debian\'s systemd package; install.sh installs it)', (t) => {
  const which = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (which.error) {
    t.skip('systemd-analyze is missing: scripts/install.sh installs Debian\'s systemd package, which has it');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-units-'));
  try {
    // What runs here: verify checks that every command exists and is executable.
    const p = thisPrograms();
    const units = [hubUnit(p, { dir: '/etc/wgp2p' }), relayUnit(p, { name: 'relay1', dir: '/etc/wgp2p', addresses: ['198.51.100.7'], ports: [52000, 52999] }), agentUnit(p, { name: 'laptop', ifname: 'laptop', dir: '/var/lib/wgp2p' })];
    const verify = (u: Unit) => {
      const path = join(dir, u.name);
      writeFileSync(path, u.text);
      return spawnSync('systemd-analyze', ['verify', '--man=no', path], { encoding: 'utf8' });
    };
    for (const u of units) {
      const r = verify(u);
      assert.equal(r.status, 0, `${u.name}: ${r.stderr}`);
      assert.equal(r.stderr, '', `${u.name}: systemd-analyze warns (it ignores a setting it cannot parse and still exits 0)`);
    }
    // The check can fail: a setting systemd cannot parse is reported.
    const broken = verify({ name: 'wgp2p-broken.service', text: units[0].text.replace('Restart=always', 'Restart=alwayz') });
    assert.match(broken.stderr, /restart specifier/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
