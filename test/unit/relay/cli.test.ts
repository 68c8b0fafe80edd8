import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));

/** The CLI's refusal of its arguments (commander checks them before any action runs: nothing is touched). */
function refusal(args: string[]): string {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 20_000 });
  assert.notEqual(r.status, 0, `${args.join(' ')} was accepted`);
  return r.stderr.split('\n').find((l) => l.startsWith('error:')) ?? r.stderr;
}

test('relay run --address: repeatable, one per family, each public, with the reason', () => {
  const run = (...a: string[]) => refusal(['relay', 'run', '--config', '/nonexistent/relay.json', ...a]);
  assert.match(run('--address', '203.0.113.1', '--address', '203.0.113.2'), /'203\.0\.113\.2' is invalid\. 203\.0\.113\.1 and 203\.0\.113\.2 are both IPv4; a relay has at most one address per family/);
  assert.match(run('--address', '2001:db8::1', '--address', '2001:db8::2'), /both IPv6/);
  assert.match(run('--address', 'fd00::1'), /unique-local/);
  assert.match(run('--address', 'fe80::1'), /link-local/);
  assert.match(run('--address', '::1'), /loopback/);
  assert.match(run(), /required option '--address <ip>' not specified/);
});

test('hub run --relay-address: repeatable, one per family, never loopback, link-local or unique-local', () => {
  const run = (...a: string[]) => refusal(['hub', 'run', '--dir', '/nonexistent', '--interface', 'x', ...a]);
  assert.match(run('--relay-address', '::1'), /::1 is a loopback address .*give an address nodes on other machines reach the relay at/);
  assert.match(run('--relay-address', 'fd12::1'), /unique-local/);
  assert.match(run('--relay-address', 'fe80::1'), /link-local/);
  assert.match(run('--relay-address', '203.0.113.1', '--relay-address', '2001:db8::1', '--relay-address', '2001:db8::2'), /2001:db8::1 and 2001:db8::2 are both IPv6/);
  assert.match(run('--relay-address', '2001:db8::1%eth0'), /zone index/);
});
