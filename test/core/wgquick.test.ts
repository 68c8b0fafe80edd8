import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateKeyPair } from '../../src/core/wireguard/keys.js';
import { formatWgQuick, parseWgQuick, WgQuickError, type WgQuickConfig } from '../../src/core/wgquick.js';

const key = () => generateKeyPair().publicKey;

test('format then parse gives back the same config, repeated [Peer] sections included', () => {
  const cfg: WgQuickConfig = {
    interface: { privateKey: key(), address: ['10.99.0.1/24', '10.99.1.1/24'], listenPort: 51820, preUp: [], postUp: ['sysctl -q -w net.ipv4.ip_forward=1', 'iptables -A FORWARD -i %i -o %i -j ACCEPT'], preDown: [], postDown: ['iptables -D FORWARD -i %i -o %i -j ACCEPT'] },
    peers: [
      { publicKey: key(), allowedIps: ['10.99.0.2/32', '192.168.10.0/24'], comment: 'agent device' },
      { publicKey: key(), allowedIps: ['10.99.0.3/32', '10.99.1.3/32'], endpoint: '203.0.113.20:41003', persistentKeepalive: 25, comment: 'client phone' },
      { publicKey: key(), allowedIps: ['fd00::2/128'], endpoint: '[2001:db8::1]:51820' },
    ],
  };
  assert.deepEqual(parseWgQuick(formatWgQuick(cfg)), cfg);
});

test('keys are case-insensitive and lists are comma-separated, as wg-quick reads them', () => {
  const k = key();
  const cfg = parseWgQuick(`[interface]\nprivatekey=${k}\nADDRESS = 10.0.0.2/24 ,10.0.1.2/24\nlistenport=36906\n\n[PEER]\npublickey = ${k}\nallowedips = 0.0.0.0/0\nPersistentKeepalive = 10\n`);
  assert.deepEqual(cfg.interface.address, ['10.0.0.2/24', '10.0.1.2/24']);
  assert.equal(cfg.interface.listenPort, 36906);
  assert.equal(cfg.peers[0].persistentKeepalive, 10);
});

test('mistakes are reported with the line and the key', () => {
  const k = key();
  const cases: [string, RegExp][] = [
    [`PrivateKey = ${k}`, /line 1: "PrivateKey" is outside any section/],
    [`[Interface]\nPrivateKey = nope`, /line 2: \[Interface\] PrivateKey is not a WireGuard key/],
    [`[Interface]\nPrivateKey = ${k}\nListenPort = 70000`, /line 3: \[Interface\] ListenPort "70000" must be a port/],
    [`[Interface]\nPrivateKey = ${k}\n[Peer]\nPublicKey = ${k}\nAllowedIPs = 10.0.0.1/40`, /line 5: \[Peer\] AllowedIPs "10\.0\.0\.1\/40" is not a CIDR/],
    [`[Interface]\nPrivateKey = ${k}\n[Peer]\nPublicKey = ${k}\nEndpoint = nowhere`, /line 5: \[Peer\] Endpoint "nowhere" must be HOST:PORT/],
    [`[Interface]\nPrivateKey = ${k}\n[Peer]\nPublicKey = ${k}\nColour = blue`, /line 5: unknown key "Colour" in \[Peer\]/],
    [`[Interface]\nPrivateKey = ${k}\n[Peer]\nAllowedIPs = 10.0.0.1/32`, /\[Peer\] number 1 has no PublicKey/],
    [`[Interface]\nAddress = 10.0.0.1/24`, /\[Interface\] has no PrivateKey/],
    [`[Interface]\nPrivateKey = ${k}\n[Interface]`, /line 3: a second \[Interface\]/],
    [`[Wat]`, /line 1: unknown section \[Wat\]/],
  ];
  for (const [text, message] of cases) assert.throws(() => parseWgQuick(text), (e: unknown) => e instanceof WgQuickError && message.test(e.message));
});
