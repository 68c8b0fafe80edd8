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

// One case each, because a CLI start cost about a second here: the wording of every refusal comes
// from relayAddressesProblem() (relay.test.ts); these show that both options repeat, use it, and
// refuse before anything runs.
test('relay run --address: repeatable, at most one per family', () => {
  const run = (...a: string[]) => refusal(['relay', 'run', '--config', '/nonexistent/relay.json', ...a]);
  assert.match(run('--address', '203.0.113.1', '--address', '203.0.113.2'), /'203\.0\.113\.2' is invalid\. 203\.0\.113\.1 and 203\.0\.113\.2 are both IPv4; a relay has at most one address per family/);
});

test('hub run --relay-address: repeatable, never link-local (nor loopback or unique-local)', () => {
  const run = (...a: string[]) => refusal(['hub', 'run', '--dir', '/nonexistent', '--interface', 'x', ...a]);
  assert.match(run('--relay-address', '203.0.113.1', '--relay-address', 'fe80::1'), /fe80::1 is a link-local address .*give an address nodes on other machines reach the relay at/);
  // It ends up in an nft script (the kernel path): anything but an address is refused here.
  assert.match(run('--relay-address', '203.0.113.1 } ; flush ruleset'), /must be the IPv4 or IPv6 address of the hub's relay/);
});

test('relay run --tcp-port: a port, refused before anything runs; --tls-cert needs --tls-key', () => {
  const run = (...a: string[]) => refusal(['relay', 'run', '--config', '/nonexistent/relay.json', '--address', '203.0.113.1', ...a]);
  assert.match(run('--tcp-port', '70000'), /"70000" must be a port from 1 to 65535/);
  assert.match(run('--tls-cert', '/nonexistent/cert.pem'), /--tls-cert and --tls-key go together/);
});
