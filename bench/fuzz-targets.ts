import YAML from 'yaml';
import { decodeJoinCode, encodeJoinCode } from '../src/core/join-code.js';
import { agentMessageSchema, decode, hubMessageSchema } from '../src/core/protocol.js';
import { hubToRelaySchema, relayToHubSchema } from '../src/core/relay-protocol.js';
import { parseWgQuick, WgQuickError } from '../src/core/wgquick.js';
import { blake2s } from '../src/core/wireguard/blake2s.js';
import { DeviceError, parseDump } from '../src/core/wireguard/device.js';
import { keyToHex } from '../src/core/wireguard/keys.js';
import { mac1Key } from '../src/core/wireguard/packet.js';
import { parseGet, UapiError } from '../src/core/wireguard/uapi.js';
import { behindRouters, dualStackPair, hubAndDevice, natPair } from '../src/lab/topologies.js';
import { parseTopologyText, TopologyError } from '../src/lab/topology.js';
import { classifyDatagram } from '../src/relay/datagram.js';
import { encodeControl, encodeData, FrameDecoder } from '../src/core/stream/framing.js';
import { decodeRelayStreamMessage, decodeShimMessage } from '../src/core/stream/messages.js';
import { IpAddress } from '../src/core/net/address.js';
import { Endpoint } from '../src/core/net/endpoint.js';
import { decode as decodeStun, encode as encodeStun, METHOD_BINDING } from '../src/core/stun/message.js';
import { answer as stunAnswer } from '../src/hub/stun-responder.js';
import type { FuzzTarget, Outcome } from './fuzz-engine.js';

/**
 * Every parser of input that crosses a trust boundary, with valid samples and what its documented
 * refusal is. A refusal is the parser's own error class (or, for decode() and join codes, a plain
 * Error whose message says what is wrong); a TypeError, RangeError (stack overflow included) or
 * any other class thrown is a crash.
 *
 * The samples are fixed (no generated keys), so a seed names the same inputs on every run.
 */

const K1 = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const K2 = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const K3 = 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=';
const PRIV = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';

/** Throws `err` unless it is exactly one of `classes` (a subclass such as TypeError is not Error). */
function refusedAs(err: unknown, ...classes: (abstract new (...args: never[]) => Error)[]): Outcome {
  if (err instanceof Error && classes.some((c) => Object.getPrototypeOf(err) === c.prototype)) return 'refused';
  throw err;
}

/**
 * Texts up to 128 KiB: room for the 100,000-character runs that expose backtracking and quadratic
 * scans, which show as tens of milliseconds here. Larger documents do arrive (a 10,000-peer
 * snapshot, a hub's dump): what they cost grows with their size, which is not the question here.
 */
const MAX_TEXT = 128 << 10;

const text = (xs: string[]) => xs.map((s) => Buffer.from(s, 'utf8'));
const jsonText = { decode: (b: Buffer): unknown => JSON.parse(b.toString('utf8')), encode: (v: unknown) => Buffer.from(JSON.stringify(v)) };

function jsonTarget(name: string, samples: unknown[], parse: (text: string) => unknown): FuzzTarget {
  return {
    name,
    samples: samples.map((s) => Buffer.from(JSON.stringify(s))),
    maxLength: MAX_TEXT,
    json: jsonText,
    run(input) {
      try {
        parse(input.toString('utf8'));
        return 'accepted';
      } catch (err) {
        // decode() refuses with a plain Error naming the message and the field.
        return refusedAs(err, Error);
      }
    },
  };
}

const peerAgent = { name: 'laptop', kind: 'agent', publicKey: K2, allowedIps: ['10.99.0.2/32'], endpoint: null, handshakeAgeMs: null, listenPort: 51820 };
const peerClient = { name: 'phone', kind: 'client', publicKey: K3, allowedIps: ['10.99.1.3/32', 'fd99::3/128'], endpoint: '[2001:db8::3]:41000', handshakeAgeMs: 1500, listenPort: null };

const hubToAgent = [
  { type: 'snapshot', settings: { peerKeepalive: 25, staleAfterSec: 120, hubPublicKey: K1, hubAllowedIps: ['10.99.0.1/32', 'fd99::1/128'], proxied: false }, peers: [peerAgent, peerClient] },
  { type: 'peer', peer: peerClient },
  { type: 'peer-removed', publicKey: K2 },
  { type: 'path', step: 'prepare', publicKey: K2, seq: 3, candidate: { kind: 'public4', endpoint: '203.0.113.20:51820' }, fallback: { endpoint: '203.0.113.2:40001', relayId: '00ff00ff00ff00ff' }, windowMs: 3000, holdMs: 500, initiates: true },
  { type: 'path', step: 'prepare', publicKey: K2, seq: 4, candidate: { kind: 'public6', endpoint: '[2001:db8:20::2]:51820' }, fallback: null, windowMs: 3000, holdMs: 0 },
  { type: 'path', step: 'punch', publicKey: K2, seq: 3 },
  { type: 'path', step: 'use', publicKey: K2, seq: 3, path: { via: 'direct', kind: 'lan', endpoint: '192.168.10.3:51820' } },
  { type: 'path', step: 'use', publicKey: K2, seq: 5, path: { via: 'relay', endpoint: '203.0.113.2:40002', relayId: 'ab12' } },
  { type: 'path', step: 'use', publicKey: K2, seq: 6, path: { via: 'hub' } },
  { type: 'path', step: 'prepare', publicKey: K2, seq: 7, candidate: { kind: 'public4', endpoint: '203.0.113.20:51820' }, fallback: null, windowMs: 2000, holdMs: 2000, initiates: false, openFirst: true },
  { type: 'nat-probe', port: 43602, from: 37024 },
];

const report = { publicKey: K2, path: 'direct', kind: 'lan', endpoint: '192.168.10.3:51820', handshakeAgeMs: 100, rxBytes: 1024, txBytes: 2048, directAfterMs: 300, reason: null, relayId: null };
const agentToHub = [
  { type: 'report', peers: [report, { ...report, publicKey: K3, path: 'relayed', kind: null, endpoint: '203.0.113.2:40002', directAfterMs: null, reason: 'symmetric NAT', relayId: '00ff00ff00ff00ff' }] },
  { type: 'hello', protocol: 2, network: { listenPort: 51820, interfaces: ['192.168.10.3/24', '2001:db8:10::3/64'] }, changed: false, peers: [report] },
  { type: 'path-event', event: 'ready', publicKey: K2, seq: 3 },
  { type: 'path-event', event: 'ready', publicKey: K2, seq: 4, opened: true },
  { type: 'path-event', event: 'heard', publicKey: K2, seq: 3, endpoint: '[2001:db8:20::2]:51820', afterMs: 120 },
  { type: 'path-event', event: 'unheard', publicKey: K2, seq: 3 },
  { type: 'path-event', event: 'relay-ok', publicKey: K2, seq: 5 },
  { type: 'path-event', event: 'lost', publicKey: K2, seq: 6 },
];

const hubToRelay = [
  { type: 'allocate', id: '0123456789abcdef', a: { publicKey: K1, ip: '203.0.113.10' }, b: { publicKey: K2, ip: '2001:db8::20' } },
  { type: 'update-ip', id: '0123456789abcdef', publicKey: K1, ip: '198.51.100.7' },
  { type: 'release', id: '0123456789abcdef' },
];

const relayToHub = [
  { type: 'hello', addresses: ['203.0.113.2', '2001:db8::2'], portMin: 40000, portMax: 40999 },
  { type: 'hello', address: '203.0.113.2', portMin: 40000, portMax: 40999 },
  { type: 'allocated', id: '0123456789abcdef', portA: 40000, portB: 40001 },
  { type: 'allocate-failed', id: '0123456789abcdef', error: 'no free relay port in 40000-40001' },
  { type: 'latched', id: '0123456789abcdef', publicKey: K2, endpoint: '[2001:db8::20]:41000' },
  { type: 'released', id: '0123456789abcdef', reason: 'idle' },
  {
    type: 'stats',
    allocations: [{ id: '0123456789abcdef', portA: 40000, portB: 40001, a: { latched: null }, b: { latched: '203.0.113.20:5000' }, aToB: { packets: 1, bytes: 148 }, bToA: { packets: 1, bytes: 92 }, dropped: { malformed: 2, badMac1: 0 } }],
  },
];

const JOIN_PREFIX = 'wgp2p-join1.';
const joinCodes = [
  encodeJoinCode({ name: 'laptop', hubPublicKey: K1, hubEndpoints: ['vpn.example.org:51820'], hubAddress: '10.99.0.1', apiPort: 51821, key: PRIV, address: '10.99.1.5/24', expiresAt: 1_800_000_000_000 }),
  encodeJoinCode({ name: 'phone', hubPublicKey: K1, hubEndpoints: ['203.0.113.2:51820', '[2001:db8::2]:51820'], hubAddress: 'fd99::1', apiPort: 51821, key: PRIV, address: '10.99.1.6/24', address6: 'fd3c:1a2b:3c4d:1::6/64', expiresAt: 1_800_000_000_000 }),
  encodeJoinCode({ name: 'hotel', hubPublicKey: K1, hubEndpoints: ['203.0.113.2:51820'], hubAddress: '10.99.0.1', apiPort: 51821, key: PRIV, address: '10.99.1.7/24', expiresAt: 1_800_000_000_000, stream: { port: 443, pin: 'sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=' } }),
];

const wgQuick = [
  `[Interface]\nPrivateKey = ${PRIV}\nAddress = 10.99.0.1/24, fd99::1/64\nListenPort = 51820\nMTU = 1420\nTable = off\nFwMark = 0xca6c\nPostUp = sysctl -q -w net.ipv4.ip_forward=1\nPostDown = true # note\nSaveConfig = false\n\n# name: laptop\n[Peer]\nPublicKey = ${K2}\nPresharedKey = ${PRIV}\nAllowedIPs = 10.99.0.2/32, 192.168.10.0/24\n\n[Peer]\nPublicKey = ${K3}\nAllowedIPs = 10.99.0.3/32\nEndpoint = [2001:db8::3]:51820\nPersistentKeepalive = 25\n`,
  `\uFEFF[Interface]\r\nPrivateKey = ${PRIV}\r\nAddress = 10.99.1.5/32\r\nDNS = 10.99.0.1, lan.example\r\nListenPort = 41003\r\n[Peer]\r\nPublicKey = ${K1}\r\nEndpoint = hub.example.com:51820\r\nAllowedIPs = 10.99.0.0/24\r\nPersistentKeepalive = off\r\n`,
];

const hex = (k: string) => keyToHex(k);
const uapi = [
  `private_key=${hex(PRIV)}\nlisten_port=51820\nfwmark=0\npublic_key=${hex(K2)}\npreshared_key=${'0'.repeat(64)}\nprotocol_version=1\nendpoint=203.0.113.20:41003\nlast_handshake_time_sec=100\nlast_handshake_time_nsec=500000000\ntx_bytes=180\nrx_bytes=92\npersistent_keepalive_interval=25\nallowed_ip=10.99.0.2/32\nallowed_ip=fd99::2/128\npublic_key=${hex(K3)}\nendpoint=[2001:db8::3]:51820\nallowed_ip=10.99.0.3/32\nerrno=0\n\n`,
];

const dumps = [
  `${PRIV}\t${K1}\t51820\toff\n${K2}\t(none)\t203.0.113.20:41003\t10.99.0.2/32,fd99::2/128\t100\t92\t180\t25\n${K3}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`,
  `(none)\t(none)\t0\t0xca6c\n`,
];

const topologies = [
  natPair('fuzzpair', 'restricted', 'symmetric'),
  hubAndDevice('fuzzroam', ['cafe']),
  behindRouters('fuzzcgn', [{ host: 'a', router: 'carrier', profile: 'cgnat' }, { host: 'b', router: 'home' }], { publicHosts: ['relay'] }),
  dualStackPair('fuzzdual', { ipv4: 'restricted', ipv6: true }, { ipv6: true }),
];

// A responder key the datagram samples' mac1 is made for, as the relay's side holds it.
const RESPONDER_MAC1 = mac1Key(Buffer.from(K2, 'base64'));
function handshake(type: 1 | 2, size: number, mac1At: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 4; i < mac1At; i++) b[i] = (i * 37 + type) & 0xff;
  b.writeUInt32LE(type, 0);
  blake2s(b.subarray(0, mac1At), 16, RESPONDER_MAC1).copy(b, mac1At);
  return b;
}
const datagrams = [
  handshake(1, 148, 116),
  handshake(2, 92, 60),
  Buffer.concat([Buffer.from([3, 0, 0, 0]), Buffer.alloc(60, 7)]),
  Buffer.concat([Buffer.from([4, 0, 0, 0]), Buffer.alloc(28, 9)]),
  Buffer.concat([Buffer.from([4, 0, 0, 0]), Buffer.alloc(1436, 5)]),
];

/** What a shim sends a relay, and the relay a shim, on the stream transport (issue 12). */
const shimToRelay = [
  { type: 'hello', v: 1, publicKey: K1, token: 'Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5' },
  { type: 'open', channel: 0, to: { kind: 'hub' } },
  { type: 'open', channel: 7, to: { kind: 'allocation', id: '0123456789abcdef' } },
  { type: 'close', channel: 7 },
];
const relayToShim = [{ type: 'welcome' }, { type: 'opened', channel: 3 }, { type: 'closed', channel: 3, reason: 'allocation 0123456789abcdef was released' }, { type: 'error', reason: 'send hello first' }];
const streamBytes = [
  Buffer.concat([encodeControl(JSON.stringify(shimToRelay[0])), encodeControl(JSON.stringify(shimToRelay[2])), encodeData(7, datagramsForStream()[0]), encodeData(7, datagramsForStream()[1])]),
  Buffer.concat([encodeData(0, Buffer.alloc(1452, 4)), encodeData(65535, Buffer.alloc(32, 4))]),
];
function datagramsForStream(): Buffer[] {
  return [Buffer.concat([Buffer.from([1, 0, 0, 0]), Buffer.alloc(144, 1)]), Buffer.concat([Buffer.from([4, 0, 0, 0]), Buffer.alloc(1448, 5)])];
}
/** STUN datagrams: RFC 5769's sample response, what doctor sends and the hub answers, and bare ones without FINGERPRINT. */
const STUN_TID = Buffer.from('b7e7a701bc34d686fa87dfae', 'hex');
const stunHeader = (type: number, body: Buffer) => {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(type, 0);
  h.writeUInt16BE(body.length, 2);
  h.writeUInt32BE(0x2112a442, 4);
  STUN_TID.copy(h, 8);
  return Buffer.concat([h, body]);
};
const stunDatagrams = [
  Buffer.from('0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000080001a147e112a64300080014' + '2b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96', 'hex'),
  encodeStun({ cls: 'request', method: METHOD_BINDING, transactionId: STUN_TID, changePort: true, responsePort: 40000, padding: 80 }),
  encodeStun({ cls: 'success', method: METHOD_BINDING, transactionId: STUN_TID, mapped: Endpoint.parse('[2001:db8::5]:40000'), otherAddress: Endpoint.parse('192.0.3.2:3479') }),
  encodeStun({ cls: 'error', method: METHOD_BINDING, transactionId: STUN_TID, error: { code: 420, reason: 'Unknown Attribute' }, unknownAttributes: [3] }),
  stunHeader(0x0001, Buffer.alloc(0)),
  stunHeader(0x0101, Buffer.from('002000080001a147e112a643', 'hex')),
  stunHeader(0x0001, Buffer.from('00030004000000060027000209c40000', 'hex')),
];
const STUN_HUB = { address: IpAddress.parse('192.0.3.2') };

export function fuzzTargets(): FuzzTarget[] {
  return [
    {
      name: 'stream-frames',
      samples: streamBytes,
      maxLength: 1 << 16,
      run(input) {
        // Whole, then cut in three: the decoder must say the same of both (chunking is the network's choice).
        const whole = new FrameDecoder();
        let a = 0;
        const p1 = whole.push(input, () => a++);
        const cut = new FrameDecoder();
        let b = 0;
        const third = Math.max(1, Math.floor(input.length / 3));
        let p2;
        for (let i = 0; i < input.length && !p2; i += third) p2 = cut.push(input.subarray(i, i + third), () => b++);
        if (a !== b || (p1 === undefined) !== (p2 === undefined)) throw new Error(`chunking changed the outcome: ${a} vs ${b} frames`);
        return p1 ? 'refused' : 'accepted';
      },
    },
    jsonTarget('stream shim->relay', shimToRelay, decodeShimMessage),
    jsonTarget('stream relay->shim', relayToShim, decodeRelayStreamMessage),
    {
      name: 'stun',
      samples: stunDatagrams,
      maxLength: 2048,
      run(input) {
        const d = decodeStun(input);
        if (!d.ok) return 'refused';
        // What the hub's responder would do with it, as far as it is pure.
        if (d.message.cls === 'request') encodeStun(stunAnswer(d.message, Endpoint.parse('198.51.100.9:40000'), STUN_HUB, 3478, 3478).message);
        return 'accepted';
      },
    },
    {
      name: 'relay-datagram',
      samples: datagrams,
      // The largest UDP payload over IPv4.
      maxLength: 65_507,
      run(input) {
        const d = classifyDatagram(input, RESPONDER_MAC1);
        return d.kind === 'malformed' || d.kind === 'bad-mac1' ? 'refused' : 'accepted';
      },
    },
    jsonTarget('relay-protocol hub->relay', hubToRelay, (t) => decode(hubToRelaySchema, t, 'message from hub')),
    jsonTarget('relay-protocol relay->hub', relayToHub, (t) => decode(relayToHubSchema, t, 'message from relay')),
    jsonTarget('protocol hub->agent', hubToAgent, (t) => decode(hubMessageSchema, t, 'message from hub')),
    jsonTarget('protocol agent->hub', agentToHub, (t) => decode(agentMessageSchema, t, 'message from agent')),
    {
      name: 'join-code',
      samples: text(joinCodes),
      maxLength: 1 << 16,
      json: {
        decode: (b) => JSON.parse(Buffer.from(b.toString('utf8').slice(JOIN_PREFIX.length), 'base64url').toString('utf8')),
        encode: (v) => Buffer.from(JOIN_PREFIX + Buffer.from(JSON.stringify(v)).toString('base64url')),
      },
      run(input) {
        try {
          decodeJoinCode(input.toString('utf8'));
          return 'accepted';
        } catch (err) {
          return refusedAs(err, Error);
        }
      },
    },
    textTarget('wg-quick', wgQuick, (t) => parseWgQuick(t, 'fuzz.conf'), WgQuickError),
    textTarget('uapi-get', uapi, parseGet, UapiError),
    textTarget('wg-dump', dumps, parseDump, DeviceError),
    {
      ...textTarget('topology-yaml', topologies.map((t) => YAML.stringify(t)), (t) => parseTopologyText(t, 'fuzz.yaml'), TopologyError),
      json: { decode: (b) => YAML.parse(b.toString('utf8')) as unknown, encode: (v) => Buffer.from(YAML.stringify(v)) },
    },
    { ...textTarget('topology-json', topologies.map((t) => JSON.stringify(t)), (t) => parseTopologyText(t, 'fuzz.json'), TopologyError), json: jsonText },
  ];
}

function textTarget(name: string, samples: string[], parse: (text: string) => unknown, refusal: abstract new (...args: never[]) => Error): FuzzTarget {
  return {
    name,
    samples: text(samples),
    maxLength: MAX_TEXT,
    run(input) {
      try {
        parse(input.toString('utf8'));
        return 'accepted';
      } catch (err) {
        return refusedAs(err, refusal);
      }
    },
  };
}
