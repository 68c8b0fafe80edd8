import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeEnrolment } from '../../../src/agent/enrol.js';
import { parseWgQuick } from '../../../src/core/wgquick.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';

const hubKey = generateKeyPair().publicKey;
/** A reply as hub/enrol-api.ts makes it. */
const reply = (over: Record<string, unknown> = {}, hub: Record<string, unknown> = {}) => ({
  name: 'laptop',
  address: '10.99.0.5/24',
  address6: 'fd3c:1a2b:3c4d::5/64',
  listenPort: 51820,
  token: 'A'.repeat(43),
  hub: { publicKey: hubKey, endpoints: ['203.0.113.2:51820', '[2001:db8::2]:51820'], allowedIps: ['10.99.0.0/24', 'fd3c:1a2b:3c4d::/64'], keepalive: 1, apiUrl: 'http://10.99.0.1:51821', ...hub },
  ...over,
});

function withDir(f: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'wgp2p-enrol-test-'));
  try {
    f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const write = (dir: string, raw: unknown) => writeEnrolment(raw, { dir, ifname: 'laptop', privateKey: generateKeyPair().privateKey, joinedVia: '203.0.113.2:51820', codeName: 'laptop' });

test('a good enrolment reply becomes a wg-quick file and an agent file, both 0600', () => {
  withDir((dir) => {
    const done = write(dir, reply());
    assert.deepEqual(readdirSync(dir).sort(), ['laptop.agent.json', 'laptop.conf']);
    for (const f of readdirSync(dir)) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    const conf = parseWgQuick(readFileSync(done.conf, 'utf8'));
    assert.deepEqual(conf.peers[0].allowedIps, ['10.99.0.0/24', 'fd3c:1a2b:3c4d::/64']);
    assert.deepEqual(done.config.hubEndpoints, ['203.0.113.2:51820', '[2001:db8::2]:51820']);
  });
});

test("a reply whose strings would reach a wg-quick file, a path or UAPI is refused with the field named, and nothing is written (issue 10, finding 13)", () => {
  const cases: [unknown, RegExp][] = [
    [reply({}, { allowedIps: ['10.0.0.1/32\nprivate_key=abc'] }), /hub\.allowedIps\.0: must be a subnet/],
    [reply({}, { allowedIps: ['10.0.0.1/32\nPostUp = sh -c id'] }), /hub\.allowedIps\.0: must be a subnet/],
    [reply({ name: '../../etc/x' }), /name: is not a node name: use 1-15 lower-case letters/],
    [reply({ name: 'laptop\nx' }), /name: is not a node name/],
    [reply({}, { publicKey: 'AAAA' }), /hub\.publicKey: must be a WireGuard public key/],
    [reply({}, { publicKey: `${hubKey}\nPostUp = id` }), /hub\.publicKey: must be a WireGuard public key/],
    [reply({ address: '10.99.0.5/24\nPostUp = id' }), /address: /],
    [reply({ address: 'fd3c::5/64' }), /address: must be an IPv4 address with its prefix/],
    [reply({ token: 'short' }), /token: must be the agent token/],
    [reply({ token: `${'A'.repeat(43)}"\n` }), /token: must be the agent token/],
    [reply({ listenPort: 0 }), /listenPort: /],
    [reply({}, { endpoints: ['999.999.999.999:99999'] }), /hub\.endpoints\.0: .*out of range/],
    [reply({}, { endpoints: ['203.0.113.2:0'] }), /hub\.endpoints\.0: .*port 0 is out of range/],
    [reply({}, { apiUrl: 'http://evil.example:80/steal' }), /hub\.apiUrl: must be http:\/\/ADDRESS:PORT/],
    [reply({}, { keepalive: 1.5 }), /hub\.keepalive: /],
    [reply({ postUp: 'id' }), /postUp/],
    [reply({ name: 'other' }), /the hub answered for node "other", but the join code is for "laptop"/],
    ['not an object', /\(top\)/],
  ];
  for (const [raw, field] of cases) {
    withDir((dir) => {
      assert.throws(() => write(dir, raw), (err: Error) => field.test(err.message) && /nothing was written/.test(err.message), String(field));
      assert.deepEqual(readdirSync(dir), [], `nothing written for ${field}`);
    });
  }
});
