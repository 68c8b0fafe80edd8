/**
 * What reading the kernel's WireGuard device costs the hub in CPU, without a kernel module: the
 * decoding of a WG_CMD_GET_DEVICE dump of N peers in the kernel's layout (each with an endpoint,
 * a handshake time, counters and one allowed IP), when every peer changed since the last read and
 * when none did (an idle hub), and the round trip of a real multi-part generic netlink dump on
 * this machine's kernel (the controller's family list) on the kept socket.
 *
 *   node dist/bench/netlink-decode.js [--peers 1000] [--reads 200]
 */
import { GenlClient } from '../src/core/netlink/client.js';
import { encodeGenl } from '../src/core/netlink/genl.js';
import { attr, decodeMessages, NLM_F_MULTI } from '../src/core/netlink/message.js';
import { netlinkUnavailable } from '../src/core/netlink/transport.js';
import { Endpoint } from '../src/core/net/endpoint.js';
import { decodeDevice, encodeSockaddr, WGALLOWEDIP_A, WGDEVICE_A, WGPEER_A } from '../src/core/wireguard/netlink-codec.js';
import { argNumber, median, percentile } from './stats.js';

const peers = argNumber('peers', 1000);
const reads = argNumber('reads', 200);
const round = (x: number) => Math.round(x * 1000) / 1000;

function u64(type: number, n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return attr.raw(type, b);
}

/** One dump, 100 peers per part as the kernel splits a long one. */
function dump(generation: number): Buffer[] {
  const entries = Array.from({ length: peers }, (_, i) => {
    const key = Buffer.alloc(32);
    key.writeUInt32BE(i);
    const ts = Buffer.alloc(16);
    ts.writeBigInt64LE(1_700_000_000n);
    return attr.nested(0, [
      attr.raw(WGPEER_A.PUBLIC_KEY, key),
      attr.raw(WGPEER_A.ENDPOINT, encodeSockaddr(Endpoint.parse(`198.51.${100 + (i >> 8)}.${i & 255}:${40000 + i}`))),
      attr.u16(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, 25),
      attr.raw(WGPEER_A.LAST_HANDSHAKE_TIME, ts),
      u64(WGPEER_A.RX_BYTES, 1000 + generation),
      u64(WGPEER_A.TX_BYTES, 2000 + generation),
      attr.nested(WGPEER_A.ALLOWEDIPS, [attr.nested(0, [attr.u16(WGALLOWEDIP_A.FAMILY, 2), attr.raw(WGALLOWEDIP_A.IPADDR, Buffer.from([10, 100 + (i >> 8), i & 255, 2])), attr.u8(WGALLOWEDIP_A.CIDR_MASK, 32)])]),
    ]);
  });
  const parts: Buffer[] = [];
  for (let i = 0; i === 0 || i < entries.length; i += 100) {
    parts.push(decodeMessages(encodeGenl(0x15, NLM_F_MULTI, 1, 0, 1, [attr.string(WGDEVICE_A.IFNAME, 'wg0'), attr.nested(WGDEVICE_A.PEERS, entries.slice(i, i + 100))]))[0].payload);
  }
  return parts;
}

function cpuMs(fn: () => void): number {
  const u0 = process.cpuUsage();
  fn();
  const u = process.cpuUsage(u0);
  return (u.user + u.system) / 1000;
}

const changed: number[] = [];
const idle: number[] = [];
const dumps = Array.from({ length: 8 }, (_, g) => dump(g));
for (let i = 0; i < reads; i++) {
  // Every read sees every peer's counters move: nothing can be reused.
  changed.push(cpuMs(() => decodeDevice(dumps[i % dumps.length])));
}
const same = dumps[0];
decodeDevice(same);
for (let i = 0; i < reads; i++) idle.push(cpuMs(() => decodeDevice(same)));

let roundTrip: { families: number; medianCpuMs: number; p95CpuMs: number } | string = netlinkUnavailable() ?? '';
if (roundTrip === '') {
  const client = new GenlClient();
  const rt: number[] = [];
  let families = 0;
  for (let i = 0; i < reads; i++) {
    const u0 = process.cpuUsage();
    families = (await client.dump(0x10, 3, 2, [], 'family list')).parts.length;
    const u = process.cpuUsage(u0);
    rt.push((u.user + u.system) / 1000);
  }
  client.close();
  roundTrip = { families, medianCpuMs: round(median(rt)), p95CpuMs: round(percentile(rt, 95)) };
}

console.log(
  JSON.stringify(
    {
      benchmark: 'netlink-decode',
      peers,
      reads,
      decodeEveryPeerChangedCpuMs: { median: round(median(changed)), p95: round(percentile(changed, 95)) },
      decodeIdleCpuMs: { median: round(median(idle)), p95: round(percentile(idle, 95)) },
      genericNetlinkDumpRoundTrip: roundTrip,
    },
    null,
    2,
  ),
);
