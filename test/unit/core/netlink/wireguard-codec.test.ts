import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeGenl, encodeGenl } from '../../../../src/core/netlink/genl.js';
import { attr, decodeAttributes, decodeMessages, LITTLE_ENDIAN, NetlinkError, NLM_F_MULTI } from '../../../../src/core/netlink/message.js';
import { Endpoint } from '../../../../src/core/net/endpoint.js';
import { generateKeyPair } from '../../../../src/core/wireguard/keys.js';
import {
  decodeDevice,
  decodeSockaddr,
  encodeSockaddr,
  MAX_SET_MESSAGE_BYTES,
  setDeviceBodies,
  WGALLOWEDIP_A,
  WGDEVICE_A,
  WGPEER_A,
  WGPEER_F_REMOVE_ME,
  WGPEER_F_REPLACE_ALLOWEDIPS,
} from '../../../../src/core/wireguard/netlink-codec.js';
import { hex } from './hex.js';

const le = { skip: !LITTLE_ENDIAN && 'the byte fixtures are little-endian' };
const KEY_11 = Buffer.alloc(32, 0x11).toString('base64');
const KEY_22 = Buffer.alloc(32, 0x22).toString('base64');

/** One part of a WG_CMD_GET_DEVICE dump as the kernel writes it (linux/wireguard.h), field by field. */
const DUMP_PART = `
  40 01 00 00  15 00  02 00  07 00 00 00  34 12 00 00   # nlmsghdr: 320 bytes, family 0x15, NLM_F_MULTI, seq 7
  00 01 00 00                                           # genlmsghdr: WG_CMD_GET_DEVICE, version 1
  08 00 01 00  05 00 00 00                              # WGDEVICE_A_IFINDEX 5
  08 00 02 00  77 67 30 00                              # WGDEVICE_A_IFNAME "wg0"
  24 00 04 00  ${'11 '.repeat(32)}                      # WGDEVICE_A_PUBLIC_KEY
  06 00 06 00  6c ca 00 00                              # WGDEVICE_A_LISTEN_PORT 51820, padded
  08 00 07 00  00 00 00 00                              # WGDEVICE_A_FWMARK 0
  e8 00 08 80                                           # WGDEVICE_A_PEERS, nested, 232 bytes
    e4 00 00 80                                         #   peer 0, nested, 228 bytes
      24 00 01 00  ${'22 '.repeat(32)}                  #     WGPEER_A_PUBLIC_KEY
      24 00 02 00  ${'00 '.repeat(32)}                  #     WGPEER_A_PRESHARED_KEY (none)
      14 00 04 00  02 00  a1 0b  cb 00 71 14  ${'00 '.repeat(8)}  # WGPEER_A_ENDPOINT sockaddr_in AF_INET, port 41227 (network order), 203.0.113.20
      06 00 05 00  19 00 00 00                          #     WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL 25
      14 00 06 00  64 00 00 00 00 00 00 00  00 65 cd 1d 00 00 00 00  # WGPEER_A_LAST_HANDSHAKE_TIME 100 s, 500,000,000 ns
      0c 00 07 00  5c 00 00 00 00 00 00 00              #     WGPEER_A_RX_BYTES 92
      0c 00 08 00  b4 00 00 00 00 00 00 00              #     WGPEER_A_TX_BYTES 180
      48 00 09 80                                       #     WGPEER_A_ALLOWEDIPS, nested, 72 bytes
        1c 00 00 80                                     #       entry, nested, 28 bytes
          06 00 01 00  02 00 00 00                      #         WGALLOWEDIP_A_FAMILY AF_INET
          08 00 02 00  0a 63 00 03                      #         WGALLOWEDIP_A_IPADDR 10.99.0.3
          05 00 03 00  20 00 00 00                      #         WGALLOWEDIP_A_CIDR_MASK 32
        28 00 00 80                                     #       entry, nested, 40 bytes
          06 00 01 00  0a 00 00 00                      #         AF_INET6
          14 00 02 00  fd 00 00 99 00 00 00 00 00 00 00 00 00 00 00 03  # fd00:99::3
          05 00 03 00  80 00 00 00                      #         /128
      08 00 0a 00  01 00 00 00                          #     WGPEER_A_PROTOCOL_VERSION 1
  14 00 00 00  03 00  02 00  07 00 00 00  34 12 00 00   # NLMSG_DONE
  00 00 00 00                                           # error 0
`;

test('a WG_CMD_GET_DEVICE dump in the kernel\'s layout reads as the device: keys, port, endpoint, handshake, counters, allowed IPs of both families', le, () => {
  const [part, done] = decodeMessages(hex(DUMP_PART));
  assert.equal(part.flags, NLM_F_MULTI);
  assert.equal(done.type, 3);
  const dev = decodeDevice([part.payload]);
  assert.deepEqual(dev, {
    publicKey: KEY_11,
    listenPort: 51820,
    fwmark: 0,
    peers: [
      {
        publicKey: KEY_22,
        endpoint: Endpoint.parse('203.0.113.20:41227'),
        allowedIps: ['10.99.0.3/32', 'fd00:99::3/128'],
        persistentKeepalive: 25,
        lastHandshakeMs: 100_500,
        rxBytes: 92,
        txBytes: 180,
      },
    ],
  });
});

test('sockaddr_in6 endpoints: port in network order, flowinfo and scope ignored; a sockaddr of another family is no endpoint', le, () => {
  const sin6 = hex(`
    0a 00  ca 6c  00 00 00 07   # AF_INET6, port 51820, flowinfo 7
    20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01   # 2001:db8::1
    03 00 00 00                 # scope id 3
  `);
  assert.equal(decodeSockaddr(sin6)?.toString(), '[2001:db8::1]:51820');
  assert.equal(decodeSockaddr(Buffer.alloc(16))?.toString(), undefined); // AF_UNSPEC: the peer has no endpoint
  assert.throws(() => decodeSockaddr(sin6.subarray(0, 20)), /too short for a sockaddr_in6/);
  for (const e of ['192.0.2.1:51820', '[2001:db8::1]:51820', '[::ffff:192.0.2.1]:9']) assert.equal(decodeSockaddr(encodeSockaddr(Endpoint.parse(e)))?.toString(), e);
  assert.deepEqual(encodeSockaddr(Endpoint.parse('203.0.113.20:41227')), hex('02 00 a1 0b cb 00 71 14 00 00 00 00 00 00 00 00'));
});

const peerNest = (key: Buffer, extra: Buffer[]) => attr.nested(0, [attr.raw(WGPEER_A.PUBLIC_KEY, key), ...extra]);
const allowed = (a: number, cidr: number) =>
  attr.nested(0, [attr.u16(WGALLOWEDIP_A.FAMILY, 2), attr.raw(WGALLOWEDIP_A.IPADDR, Buffer.from([10, 0, 0, a])), attr.u8(WGALLOWEDIP_A.CIDR_MASK, cidr)]);
const part = (attrs: Buffer[]) => decodeMessages(encodeGenl(0x15, NLM_F_MULTI, 1, 0, 1, attrs))[0].payload;

test('a peer whose allowed IPs go on in the next part is one peer; the next part\'s further peers are appended', () => {
  const k1 = Buffer.alloc(32, 1);
  const k2 = Buffer.alloc(32, 2);
  const ifname = attr.string(WGDEVICE_A.IFNAME, 'wg0');
  const dev = decodeDevice([
    part([ifname, attr.u16(WGDEVICE_A.LISTEN_PORT, 51820), attr.nested(WGDEVICE_A.PEERS, [peerNest(k1, [attr.u16(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, 25), attr.nested(WGPEER_A.ALLOWEDIPS, [allowed(1, 32)])])])]),
    part([ifname, attr.nested(WGDEVICE_A.PEERS, [peerNest(k1, [attr.nested(WGPEER_A.ALLOWEDIPS, [allowed(2, 32), allowed(3, 32)])]), peerNest(k2, [])])]),
  ]);
  assert.equal(dev.listenPort, 51820);
  assert.deepEqual(
    dev.peers.map((p) => [p.publicKey, p.persistentKeepalive, p.allowedIps]),
    [
      [k1.toString('base64'), 25, ['10.0.0.1/32', '10.0.0.2/32', '10.0.0.3/32']],
      [k2.toString('base64'), 0, []],
    ],
  );
});

test('a dump with a short key, a bad prefix length or a peer without a key is refused with the attribute named', () => {
  const bad = (extra: Buffer[], key = Buffer.alloc(32, 1)) => () => decodeDevice([part([attr.nested(WGDEVICE_A.PEERS, [peerNest(key, extra)])])]);
  assert.throws(bad([], Buffer.alloc(31, 1)), /WGPEER_A_PUBLIC_KEY is 31 bytes, expected 32/);
  assert.throws(bad([attr.nested(WGPEER_A.ALLOWEDIPS, [allowed(1, 33)])]), /CIDR_MASK is 33, expected 0-32/);
  assert.throws(bad([attr.raw(WGPEER_A.RX_BYTES, Buffer.alloc(4))]), /WGPEER_A_RX_BYTES is 4 bytes, expected 8/);
  assert.throws(() => decodeDevice([part([attr.nested(WGDEVICE_A.PEERS, [attr.nested(0, [attr.u16(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, 1)])])])]), /no WGPEER_A_PUBLIC_KEY/);
  assert.throws(() => decodeDevice([part([attr.string(WGDEVICE_A.IFNAME, 'wg0')]), part([attr.string(WGDEVICE_A.IFNAME, 'wg1')])]), /switched from interface "wg0" to "wg1"/);
});

test('WG_CMD_SET_DEVICE for one peer is the kernel\'s tree: key, REPLACE_ALLOWEDIPS, sockaddr_in, keepalive, allowed IPs', le, () => {
  const [body] = setDeviceBodies('wg0', { peers: [{ publicKey: KEY_22, endpoint: Endpoint.parse('192.0.2.1:51820'), persistentKeepalive: 25, allowedIps: ['10.99.0.3/32'] }] });
  assert.deepEqual(
    Buffer.concat(body),
    hex(`
      08 00 02 00  77 67 30 00                            # WGDEVICE_A_IFNAME "wg0"
      70 00 08 80                                         # WGDEVICE_A_PEERS, nested, 112 bytes
        6c 00 00 80                                       #   peer, nested, 108 bytes
          24 00 01 00  ${'22 '.repeat(32)}                #     WGPEER_A_PUBLIC_KEY
          08 00 03 00  02 00 00 00                        #     WGPEER_A_FLAGS REPLACE_ALLOWEDIPS
          14 00 04 00  02 00 ca 6c c0 00 02 01 ${'00 '.repeat(8)}  # WGPEER_A_ENDPOINT 192.0.2.1:51820
          06 00 05 00  19 00 00 00                        #     WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL 25
          20 00 09 80                                     #     WGPEER_A_ALLOWEDIPS, nested
            1c 00 00 80                                   #       entry
              06 00 01 00  02 00 00 00                    #         AF_INET
              08 00 02 00  0a 63 00 03                    #         10.99.0.3
              05 00 03 00  20 00 00 00                    #         /32
    `),
  );
});

type PeerEntry = { key: string; flags: number; keepalive?: number; ips: number };
function entries(bodies: Buffer[][]): PeerEntry[] {
  const out: PeerEntry[] = [];
  for (const body of bodies) {
    const attrs = decodeGenl(Buffer.concat([Buffer.alloc(4), ...body])).attributes;
    for (const peers of attrs.filter((a) => a.type === WGDEVICE_A.PEERS)) {
      for (const p of decodeAttributes(peers.value)) {
        const e: PeerEntry = { key: '', flags: 0, ips: 0 };
        for (const a of decodeAttributes(p.value)) {
          if (a.type === WGPEER_A.PUBLIC_KEY) e.key = a.value.toString('base64');
          if (a.type === WGPEER_A.FLAGS) e.flags = a.value.readUInt32LE(0);
          if (a.type === WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL) e.keepalive = a.value.readUInt16LE(0);
          if (a.type === WGPEER_A.ALLOWEDIPS) e.ips += decodeAttributes(a.value).length;
        }
        out.push(e);
      }
    }
  }
  return out;
}

test('the keepalive reset (0, then 25) stays two entries in order; a removal is REMOVE_ME alone', le, () => {
  const k = generateKeyPair().publicKey;
  const gone = generateKeyPair().publicKey;
  const bodies = setDeviceBodies('wg0', { peers: [{ publicKey: k, endpoint: Endpoint.parse('1.2.3.4:5'), persistentKeepalive: 0 }, { publicKey: k, persistentKeepalive: 25 }, { publicKey: gone, remove: true, persistentKeepalive: 9 }] });
  assert.deepEqual(entries(bodies), [
    { key: k, flags: 0, keepalive: 0, ips: 0 },
    { key: k, flags: 0, keepalive: 25, ips: 0 },
    { key: gone, flags: WGPEER_F_REMOVE_ME, ips: 0 },
  ]);
});

test('a long update is split into messages under the size cap, peers in order, a peer\'s allowed IPs replaced only in its first fragment', le, () => {
  const keys = Array.from({ length: 400 }, () => generateKeyPair().publicKey);
  const many = Array.from({ length: 3000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.0/24`);
  const bodies = setDeviceBodies('wg0', { listenPort: 51820, peers: [...keys.map((publicKey) => ({ publicKey, allowedIps: ['10.200.0.1/32'] })), { publicKey: keys[0], allowedIps: many }] });
  assert.ok(bodies.length > 2);
  for (const b of bodies) assert.ok(Buffer.concat(b).length + 20 <= MAX_SET_MESSAGE_BYTES);
  // The listen port goes out once, in the first message.
  const ports = bodies.map((b) => decodeAttributes(Buffer.concat(b)).filter((a) => a.type === WGDEVICE_A.LISTEN_PORT).length);
  assert.deepEqual(ports, [1, ...bodies.slice(1).map(() => 0)]);
  const e = entries(bodies);
  assert.deepEqual(e.slice(0, 400).map((x) => x.key), keys);
  const last = e.slice(400);
  assert.ok(last.length > 1);
  assert.ok(last.every((x) => x.key === keys[0]));
  assert.deepEqual(last.map((x) => x.flags), [WGPEER_F_REPLACE_ALLOWEDIPS, ...last.slice(1).map(() => 0)]);
  assert.equal(last.reduce((n, x) => n + x.ips, 0), 3000);
});

test('a bad key or allowed IP in an update is refused before anything is sent, naming it', () => {
  assert.throws(() => setDeviceBodies('wg0', { peers: [{ publicKey: 'nope' }] }), /public key "nope" is not a WireGuard key/);
  assert.throws(() => setDeviceBodies('wg0', { peers: [{ publicKey: KEY_22, allowedIps: ['10.0.0.1'] }] }), (err: Error) => err instanceof NetlinkError && /allowed IP "10.0.0.1"/.test(err.message));
  assert.throws(() => setDeviceBodies('wg0', { peers: [{ publicKey: KEY_22, persistentKeepalive: 70000 }] }), /persistent keepalive 70000/);
  assert.throws(() => setDeviceBodies('a-very-long-interface-name', {}), /1-15 bytes/);
});

test('read after read: a peer whose counters moved is seen with the new ones, and a continued peer is not doubled', () => {
  const k1 = Buffer.alloc(32, 1);
  const k2 = Buffer.alloc(32, 2);
  const rx = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return attr.raw(WGPEER_A.RX_BYTES, b);
  };
  const dump = (rx2: number) => [
    part([attr.nested(WGDEVICE_A.PEERS, [peerNest(k1, [attr.nested(WGPEER_A.ALLOWEDIPS, [allowed(1, 32)])])])]),
    part([attr.nested(WGDEVICE_A.PEERS, [peerNest(k1, [attr.nested(WGPEER_A.ALLOWEDIPS, [allowed(2, 32)])]), peerNest(k2, [rx(rx2)])])]),
  ];
  const first = decodeDevice(dump(100));
  const again = decodeDevice(dump(100));
  const moved = decodeDevice(dump(164));
  for (const d of [first, again, moved]) assert.deepEqual(d.peers[0].allowedIps, ['10.0.0.1/32', '10.0.0.2/32']);
  assert.deepEqual([first, again, moved].map((d) => d.peers[1].rxBytes), [100, 100, 164]);
});
