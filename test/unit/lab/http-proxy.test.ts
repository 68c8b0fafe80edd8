import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LAB_PROXY_PORT, proxyUrl, tinyproxyConfig } from '../../../src/lab/http-proxy.js';
import { natRuleset } from '../../../src/lab/nat-rules.js';
import { parseTopology, type TopologyInput } from '../../../src/lab/topology.js';

const topology = (extra: Record<string, unknown> = {}): TopologyInput => ({
  name: 'proxy',
  routers: [{ name: 'corp', profile: 'http-proxy', wan: '203.0.113.10', lan: '192.168.10.0/24', ...extra }],
  hosts: [
    { name: 'hub', network: 'internet', address: '203.0.113.2' },
    { name: 'dev', network: 'corp', address: '192.168.10.2' },
  ],
});
const chain = (rules: string, name: string) => new RegExp(`chain ${name} \\{([^}]*)\\}`).exec(rules)?.[1] ?? '';

test('an http-proxy router forwards nothing from its LAN and takes from it only the proxy port', () => {
  const r = parseTopology(topology()).routers[0];
  const rules = natRuleset(r);
  const forward = chain(rules, 'forward');
  // The LAN's drop comes before its accept: no UDP and no direct TCP leave, whatever the port.
  assert.ok(forward.indexOf('iifname "lan" drop') >= 0 && forward.indexOf('iifname "lan" drop') < forward.indexOf('iifname "lan" accept'), forward);
  const input = chain(rules, 'input');
  assert.match(input, new RegExp(`iifname "lan" ip daddr 192\\.168\\.10\\.1 tcp dport ${LAB_PROXY_PORT} accept\\n\\s*iifname "lan" drop`));
  // The proxy itself gets out to TCP 443 only.
  assert.match(chain(rules, 'output'), /oifname "wan" tcp dport 443 accept\n\s*oifname "wan" drop/);
  assert.equal(proxyUrl(r), `http://192.168.10.1:${LAB_PROXY_PORT}`);
});

test('other profiles have no output chain: their rules are as before', () => {
  const t = topology();
  const rules = natRuleset(parseTopology({ ...t, routers: [{ ...t.routers![0], profile: 'udp-blocked' }] }).routers[0]);
  assert.doesNotMatch(rules, /chain output/);
});

test("tinyproxy listens on the router's LAN address, allows its LAN, and CONNECT only to 443", () => {
  const conf = tinyproxyConfig(parseTopology(topology()).routers[0]);
  assert.match(conf, /^Listen 192\.168\.10\.1$/m);
  assert.match(conf, /^Allow 192\.168\.10\.0\/24$/m);
  assert.match(conf, /^ConnectPort 443$/m);
  assert.deepEqual(conf.match(/^ConnectPort .*$/gm), ['ConnectPort 443']);
  assert.match(conf, new RegExp(`^Port ${LAB_PROXY_PORT}$`, 'm'));
  assert.doesNotMatch(conf, /^(LogFile|Syslog)/m);
});

test('an http-proxy router with UPnP, hairpin or IPv6 is refused, naming them and the fix', () => {
  assert.throws(() => parseTopology(topology({ upnp: true, hairpin: true })), /routers\[0\]: an http-proxy router .*remove upnp and hairpin, or use another profile/);
  assert.throws(() => parseTopology(topology({ ipv6: { prefix: '2001:db8:10::/48' } })), /remove ipv6/);
});
