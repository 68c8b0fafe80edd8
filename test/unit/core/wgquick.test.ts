import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import assert from 'node:assert/strict';
import { formatWgQuick, parseWgQuick, WgQuickError, type WgQuickConfig } from '../../../src/core/wgquick.js';

// Fixed keys keep the expected texts below exact.
const HUB_PRIV = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const HUB_PUB = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const A_PUB = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const B_PUB = 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=';
const PSK = 'FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=';

function throwsAt(text: string, message: RegExp): void {
  assert.throws(
    () => parseWgQuick(text),
    (e: unknown) => {
      assert.ok(e instanceof WgQuickError, `expected a WgQuickError, got ${String(e)}`);
      assert.match(e.message, message);
      return true;
    },
  );
}

test('a hub config with three peers and PostUp/PostDown rules survives format then parse', () => {
  const cfg: WgQuickConfig = {
    interface: {
      privateKey: HUB_PRIV,
      address: ['10.99.0.1/24', '10.99.1.1/24', 'fd99::1/64'],
      listenPort: 51820,
      dns: ['10.99.0.1', 'lan.example'],
      mtu: 1420,
      table: 'off',
      fwmark: 0xca6c,
      preUp: [],
      postUp: ['sysctl -q -w net.ipv4.ip_forward=1', 'iptables -A FORWARD -i %i -o %i -j ACCEPT', 'iptables -t nat -A POSTROUTING -s 10.99.1.0/24 -o eth0 -j MASQUERADE'],
      preDown: [],
      postDown: ['iptables -D FORWARD -i %i -o %i -j ACCEPT', 'iptables -t nat -D POSTROUTING -s 10.99.1.0/24 -o eth0 -j MASQUERADE'],
      saveConfig: false,
    },
    peers: [
      { publicKey: HUB_PUB, allowedIps: ['10.99.0.2/32', '192.168.10.0/24'], comment: 'agent device' },
      { publicKey: A_PUB, presharedKey: PSK, allowedIps: ['10.99.0.3/32', '10.99.1.3/32'], endpoint: '203.0.113.20:41003', persistentKeepalive: 25, comment: 'client phone (no endpoint known yet: regenerate)' },
      { publicKey: B_PUB, allowedIps: ['fd99::3/128'], endpoint: '[2001:db8::1]:51820', persistentKeepalive: 0, comment: 'name: literally' },
    ],
  };
  const text = formatWgQuick(cfg);
  assert.deepEqual(parseWgQuick(text), cfg);
  assert.equal(formatWgQuick(parseWgQuick(text)), text);
  assert.match(text, /^\[Interface\]\nPrivateKey = /);
  assert.match(text, /\nPostUp = sysctl -q -w net.ipv4.ip_forward=1\nPostUp = iptables -A FORWARD/);
  assert.match(text, /\n\n# agent device\n\[Peer\]\nPublicKey = /);
  assert.match(text, /\nAllowedIPs = 10\.99\.0\.3\/32, 10\.99\.1\.3\/32\n/);
});

test('the seed WireguardP2P client config: ListenPort, the hub and an agent, keepalives', () => {
  const text = `[Interface]
PrivateKey = ${HUB_PRIV}
Address = 10.99.0.3/24
ListenPort = 41003

# hub
[Peer]
PublicKey = ${HUB_PUB}
AllowedIPs = 10.99.0.1/32
Endpoint = hub.example.com:51820
PersistentKeepalive = 25

# agent device
[Peer]
PublicKey = ${A_PUB}
AllowedIPs = 10.99.0.2/32, 192.168.10.0/24
Endpoint = 198.51.100.7:51821
PersistentKeepalive = 1
`;
  const cfg = parseWgQuick(text);
  assert.deepEqual(cfg, {
    interface: { privateKey: HUB_PRIV, address: ['10.99.0.3/24'], listenPort: 41003, preUp: [], postUp: [], preDown: [], postDown: [] },
    peers: [
      { publicKey: HUB_PUB, allowedIps: ['10.99.0.1/32'], endpoint: 'hub.example.com:51820', persistentKeepalive: 25, comment: 'hub' },
      { publicKey: A_PUB, allowedIps: ['10.99.0.2/32', '192.168.10.0/24'], endpoint: '198.51.100.7:51821', persistentKeepalive: 1, comment: 'agent device' },
    ],
  });
  assert.equal(formatWgQuick(cfg), text);
});

test('keys and section names are case-insensitive, lists trimmed, repeated keys accumulate', () => {
  const cfg = parseWgQuick(
    [
      '[interface]',
      `privatekey=${HUB_PRIV}`,
      'ADDRESS = 10.0.0.2/24 ,10.0.1.2/24',
      'address = fd00::2/64',
      'listenport=36906',
      'postup = echo one',
      'PostUP = echo two',
      'SaveConfig = TRUE',
      '',
      '[PEER]',
      `publickey = ${HUB_PUB}`,
      'allowedips = 0.0.0.0/0,  ::/0',
      'ALLOWEDIPS = 10.1.0.0/16',
      'persistentkeepalive = off',
    ].join('\r\n'),
  );
  assert.deepEqual(cfg.interface.address, ['10.0.0.2/24', '10.0.1.2/24', 'fd00::2/64']);
  assert.equal(cfg.interface.listenPort, 36906);
  assert.deepEqual(cfg.interface.postUp, ['echo one', 'echo two']);
  assert.equal(cfg.interface.saveConfig, true);
  assert.deepEqual(cfg.peers[0].allowedIps, ['0.0.0.0/0', '::/0', '10.1.0.0/16']);
  assert.equal(cfg.peers[0].persistentKeepalive, 0);
});

test('comments: ignored, inline ones cut as wg-quick does, "# name:" kept on the peer', () => {
  const cfg = parseWgQuick(`# written by hand
[Interface] # the local end
PrivateKey = ${HUB_PRIV}
PostUp = echo up # not part of the command
# about the next block, but not directly above it

[Peer]
# name: laptop
PublicKey = ${HUB_PUB}
# another remark
[Peer]
PublicKey = ${A_PUB}
`);
  assert.deepEqual(cfg.interface.postUp, ['echo up']);
  assert.equal(cfg.peers[0].comment, 'laptop');
  // A plain remark right above a [Peer] names it, as formatWgQuick writes it.
  assert.equal(cfg.peers[1].comment, 'another remark');
});

test('the source name and line number lead every message', () => {
  assert.throws(() => parseWgQuick('[Interface]\nPrivateKey = x', '/etc/wireguard/wg0.conf'), /^WgQuickError: \/etc\/wireguard\/wg0\.conf line 2: \[Interface\] PrivateKey/);
});

const I = `[Interface]\nPrivateKey = ${HUB_PRIV}`;
const P = `${I}\n[Peer]\nPublicKey = ${HUB_PUB}`;

const errors: [string, string, RegExp][] = [
  ['unknown section', `${I}\n[Wat]`, /^config line 3: unknown section \[Wat\]; wg-quick knows only \[Interface\] and \[Peer\]$/],
  ['key outside a section', `PrivateKey = ${HUB_PRIV}\n[Interface]`, /^config line 1: PrivateKey is outside any section; put it under \[Interface\] or \[Peer\]$/],
  ['line that is not Key = Value', `${I}\nListenPort 51820`, /^config line 3: "ListenPort 51820" is neither/],
  ['unknown key in [Peer]', `${P}\nColour = blue`, /^config line 5: unknown key Colour in \[Peer\]; the keys there are PublicKey, /],
  ['unknown key in [Interface]', `${I}\nAdress = 10.0.0.1/24`, /^config line 3: unknown key Adress in \[Interface\]/],
  // A private key pasted on a line of its own: refused without echoing it (issue 10: secrets are never in messages).
  ['a bare key on its own line', `${I}\n${HUB_PRIV}`, /^config line 3: unknown key that looks like a bare key \(not shown\) in \[Interface\]/],
  ['[Interface] key under [Peer]', `${P}\nListenPort = 51820`, /^config line 5: \[Peer\] has no key ListenPort; it belongs under \[Interface\]$/],
  ['missing PrivateKey', `# x\n[Interface]\nAddress = 10.0.0.1/24`, /^config line 2: \[Interface\] has no PrivateKey; add "PrivateKey = /],
  ['no [Interface] at all', `[Peer]\nPublicKey = ${HUB_PUB}`, /^config: no \[Interface\] section/],
  ['missing PublicKey in a peer', `${P}\n\n[Peer]\nAllowedIPs = 10.0.0.1/32`, /^config line 6: \[Peer\] has no PublicKey; add "PublicKey = /],
  ['malformed PrivateKey, value kept secret', `[Interface]\nPrivateKey = c2VjcmV0`, /^config line 2: \[Interface\] PrivateKey is not a WireGuard key \(44 characters of base64, as printed by wg genkey\)$/],
  ['malformed PublicKey', `${I}\n\n\n\n[Peer]\nPublicKey = abc`, /^config line 7: \[Peer\] PublicKey "abc" is not a WireGuard key \(44 characters of base64/],
  ['malformed PresharedKey', `${P}\nPresharedKey = abc=`, /^config line 5: \[Peer\] PresharedKey is not a WireGuard key/],
  ['ListenPort above 65535', `${I}\nListenPort = 70000`, /^config line 3: \[Interface\] ListenPort "70000" is not a port; use a number from 1 to 65535$/],
  ['ListenPort 0', `${I}\nListenPort = 0`, /^config line 3: \[Interface\] ListenPort "0" is not a port/],
  ['Endpoint port out of range', `${P}\nEndpoint = 203.0.113.1:0`, /^config line 5: \[Peer\] Endpoint "203\.0\.113\.1:0": port "0" must be from 1 to 65535$/],
  ['Endpoint without port', `${P}\nEndpoint = nowhere`, /^config line 5: \[Peer\] Endpoint "nowhere": has no port; write HOST:PORT/],
  ['Endpoint with bare IPv6', `${P}\nEndpoint = 2001:db8::1:51820`, /^config line 5: \[Peer\] Endpoint "2001:db8::1:51820": looks like an IPv6 address; put it in brackets/],
  ['Endpoint with bad bracketed host', `${P}\nEndpoint = [10.0.0.1]:51820`, /^config line 5: \[Peer\] Endpoint "\[10\.0\.0\.1\]:51820": "10\.0\.0\.1" in brackets is not an IPv6 address$/],
  ['Endpoint with bad host name', `${P}\nEndpoint = bad_host!:51820`, /^config line 5: \[Peer\] Endpoint "bad_host!:51820": host "bad_host!" is neither/],
  ['IPv4 prefix too long in AllowedIPs', `${P}\nAllowedIPs = 10.0.0.1/32, 10.0.0.1/40`, /^config line 5: \[Peer\] AllowedIPs "10\.0\.0\.1\/40" is not an IPv4 or IPv6 CIDR like /],
  ['IPv6 prefix too long in AllowedIPs', `${P}\nAllowedIPs = fd00::/129`, /^config line 5: \[Peer\] AllowedIPs "fd00::\/129" is not an IPv4 or IPv6 CIDR/],
  ['garbage in Address', `${I}\nAddress = 10.0.0.256/24`, /^config line 3: \[Interface\] Address "10\.0\.0\.256\/24" is not an IPv4 or IPv6 CIDR/],
  ['IPv6 with zone in Address', `${I}\nAddress = fe80::1%eth0/64`, /^config line 3: \[Interface\] Address "fe80::1%eth0\/64" is not/],
  ['PersistentKeepalive above 65535', `${P}\nPersistentKeepalive = 65536`, /^config line 5: \[Peer\] PersistentKeepalive "65536" must be off or seconds from 0 to 65535/],
  ['negative PersistentKeepalive', `${P}\nPersistentKeepalive = -1`, /^config line 5: \[Peer\] PersistentKeepalive "-1" must be/],
  ['duplicate [Interface]', `${I}\n\n[interface]`, /^config line 4: a second \[Interface\] section \(the first is on line 1\); a config has exactly one/],
  ['PublicKey twice in one peer', `${P}\nPublicKey = ${A_PUB}`, /^config line 5: \[Peer\] PublicKey is set twice \(also on line 4\); keep one$/],
  ['malformed MTU', `${I}\nMTU = big`, /^config line 3: \[Interface\] MTU "big" must be a number/],
  ['malformed FwMark', `${I}\nFwMark = 0xzz`, /^config line 3: \[Interface\] FwMark "0xzz" must be off or a 32-bit number/],
  ['malformed SaveConfig', `${I}\nSaveConfig = yes`, /^config line 3: \[Interface\] SaveConfig "yes" must be true or false$/],
];

errors.push(
  ['Endpoint with a zone index', `${P}\nEndpoint = [fe80::1%eth0]:51820`, /^config line 5: \[Peer\] Endpoint "\[fe80::1%eth0\]:51820": "fe80::1%eth0" has a zone index/],
  ['Endpoint with a bracket but no ]:PORT', `${P}\nEndpoint = [2001:db8::1]51820`, /^config line 5: \[Peer\] Endpoint "\[2001:db8::1\]51820": must be \[IPV6\]:PORT/],
  ['Endpoint with a malformed IPv6 address', `${P}\nEndpoint = [2001:db8::1::2]:51820`, /^config line 5: \[Peer\] Endpoint "\[2001:db8::1::2\]:51820": "2001:db8::1::2" is not an IPv6 address$/],
  ['Endpoint with digits that are no IPv4 address', `${P}\nEndpoint = 999.1.1.1:51820`, /^config line 5: \[Peer\] Endpoint "999\.1\.1\.1:51820": "999\.1\.1\.1" is not an IPv4 address/],
  ['empty Endpoint', `${P}\nEndpoint =`, /^config line 5: \[Peer\] Endpoint "": is empty; write HOST:PORT/],
  ['IPv6 Address with a malformed group', `${I}\nAddress = fd00::g/64`, /^config line 3: \[Interface\] Address "fd00::g\/64" is not an IPv4 or IPv6 CIDR like 10\.0\.0\.2\/24 or fd00::2\/64 \("fd00::g" is not an IPv6 address\)$/],
  ['bracketed AllowedIPs', `${P}\nAllowedIPs = [fd00::1]/128`, /^config line 5: \[Peer\] AllowedIPs "\[fd00::1\]\/128" is not an IPv4 or IPv6 CIDR .*bracketed/],
);

test('IPv6: interface addresses, allowed IPs (routes and bare hosts) and bracketed endpoints, as wg-quick configs carry them', () => {
  const text = [
    '[Interface]',
    `PrivateKey = ${HUB_PRIV}`,
    'Address = 10.99.0.3/24, fd00:99::3/64, 2001:db8:1::3/64',
    '',
    '[Peer]',
    `PublicKey = ${HUB_PUB}`,
    'AllowedIPs = 10.99.0.1/32, fd00:99::1/128, 2001:db8:2::/48, fd00:99::7, ::/0',
    'Endpoint = [2001:db8::1]:51820',
    '',
    '[Peer]',
    `PublicKey = ${A_PUB}`,
    'AllowedIPs = 0.0.0.0/0',
    'Endpoint = [::ffff:192.0.2.1]:51820',
    '',
    '[Peer]',
    `PublicKey = ${B_PUB}`,
    'Endpoint = hub.example.com.:51820',
  ].join('\n');
  const cfg = parseWgQuick(text);
  assert.deepEqual(cfg.interface.address, ['10.99.0.3/24', 'fd00:99::3/64', '2001:db8:1::3/64']);
  assert.deepEqual(cfg.peers[0].allowedIps, ['10.99.0.1/32', 'fd00:99::1/128', '2001:db8:2::/48', 'fd00:99::7', '::/0']);
  // Values are kept as written (configs are the user's text), only checked.
  assert.equal(cfg.peers[0].endpoint, '[2001:db8::1]:51820');
  assert.equal(cfg.peers[1].endpoint, '[::ffff:192.0.2.1]:51820');
  assert.equal(cfg.peers[2].endpoint, 'hub.example.com.:51820', 'an absolute DNS name, as the resolver takes it');
  assert.deepEqual(parseWgQuick(formatWgQuick(cfg)), cfg);
  assert.equal(parseWgQuick(`${P}\nEndpoint = [2001:DB8:0::1]:51820`).peers[0].endpoint, '[2001:DB8:0::1]:51820', 'any valid spelling of the address');
});

for (const [name, text, message] of errors) {
  test(`error: ${name}`, () => throwsAt(text, message));
}

test('formatWgQuick refuses values that wg-quick would cut short', () => {
  const cfg: WgQuickConfig = {
    interface: { privateKey: HUB_PRIV, address: [], preUp: [], postUp: ['echo a # b'], preDown: [], postDown: [] },
    peers: [],
  };
  assert.throws(() => formatWgQuick(cfg), /PostUp "echo a # b" cannot be written/);
});

/**
 * Parses in a worker, stopped after `limitMs`: a parser stuck in a regex blocks its thread, so
 * only another thread can turn the hang into a failure. Resolves to the error message, or to
 * "parsed" when the text was accepted. The limit is a liveness bound, far above the milliseconds
 * this takes, not a timing figure. One worker for all the texts: starting one costs more than parsing.
 */
function parseInWorker(texts: string[], limitMs = 10_000): Promise<string[]> {
  const url = new URL('../../../src/core/wgquick.js', import.meta.url).href;
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     import(workerData.url).then(({ parseWgQuick }) => {
       parentPort.postMessage(workerData.texts.map((text) => {
         try { parseWgQuick(text); return 'parsed'; } catch (e) { return e.name + ': ' + e.message; }
       }));
     });`,
    { eval: true, workerData: { url, texts } },
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error(`parseWgQuick did not finish ${texts.length} configs within ${limitMs} ms`));
    }, limitMs);
    worker.once('message', (m: string[]) => {
      clearTimeout(timer);
      void worker.terminate();
      resolve(m);
    });
    worker.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

// Issue 10: the section-header regex backtracked cubically, and these lines never finished.
test('a "[" line with 5,000 or 100,000 spaces is refused with its line number, not left to hang', async () => {
  const bad = [5_000, 100_000].flatMap((n) => ['x', ']]'].map((tail) => `[Interface]\nPrivateKey = ${HUB_PRIV}\n[${' '.repeat(n)}${tail}\n`));
  // Spaces inside a real header are still only padding.
  const good = [5_000, 100_000].map((n) => `[${' '.repeat(n)}Interface${' '.repeat(n)}]\nPrivateKey = ${HUB_PRIV}\n`);
  const messages = await parseInWorker([...bad, ...good]);
  for (const m of messages.slice(0, bad.length)) assert.match(m, /^WgQuickError: config line 3: .* is neither a \[Section\] header nor "Key = Value"$/s);
  assert.deepEqual(messages.slice(bad.length), ['parsed', 'parsed']);
});

test('a header with a "]" inside its name is not a section header', () => {
  throwsAt(`[Interface]\nPrivateKey = ${HUB_PRIV}\n[Peer]]\n`, /line 3: "\[Peer\]\]" is neither a \[Section\] header/);
  throwsAt(`[]\n`, /line 1: unknown section \[\]/);
});
