/**
 * iperf3 over WireGuard: direct between two home NATs, then through the relay (same lab, same
 * run), as a share of direct. The relay runs as its own process on the public host.
 *
 *   node dist/bench/relay-throughput.js [--runs 5] [--seconds 5] [--userspace]
 */
import { fileURLToPath } from 'node:url';
import { setDevice } from '../src/core/wireguard/uapi.js';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { parseTopology } from '../src/lab/topology.js';
import { natPair } from '../src/lab/topologies.js';
import { iperf3, msUntilPingReply, startWireGuard } from '../src/lab/wireguard.js';
import { argNumber, median, progress } from './stats.js';

teardownOnExit();
const runs = argNumber('runs', 5);
const seconds = argNumber('seconds', 5);
const RELAY_HOST = fileURLToPath(new URL('../src/lab/relay-host.js', import.meta.url));
const userspace = process.argv.includes('--userspace');

const lab = await Lab.up(parseTopology(natPair(`brelay${process.pid % 1000}`, 'restricted')));
try {
  const aIf = `br${process.pid % 10000}a`;
  const bIf = `br${process.pid % 10000}b`;
  const a = await startWireGuard(lab.ns('a'), aIf, { listenPort: 51820, address: '10.77.0.1/24' });
  await lab.recordWireGuard('a', aIf);
  const b = await startWireGuard(lab.ns('b'), bIf, { listenPort: 51820, address: '10.77.0.2/24' });
  await lab.recordWireGuard('b', bIf);
  lab.spawn('relay', 'relay', process.execPath, [RELAY_HOST, '--address', '203.0.113.2', '--ports', '47000-47010', '--allocate', `ab,${a.publicKey},203.0.113.10,${b.publicKey},203.0.113.20`, ...(userspace ? ['--userspace'] : [])]);

  let pathRetries = 0;
  /**
   * Points both sides at new endpoints with a fresh session (a relay only learns ports from
   * handshakes). Seen here: going back to direct after a relay run sometimes gets no handshake for
   * 15 s; re-triggering both sides recovers it, and the number of such retries is reported.
   */
  const path = async (aEndpoint: string, bEndpoint: string) => {
    await setDevice(aIf, { peers: [{ publicKey: b.publicKey, remove: true }] });
    await setDevice(bIf, { peers: [{ publicKey: a.publicKey, remove: true }] });
    for (let attempt = 0; ; attempt++) {
      await setDevice(aIf, { peers: [{ publicKey: b.publicKey, endpoint: aEndpoint, allowedIps: ['10.77.0.2/32'], persistentKeepalive: 0 }, { publicKey: b.publicKey, persistentKeepalive: 25 }] });
      await setDevice(bIf, { peers: [{ publicKey: a.publicKey, endpoint: bEndpoint, allowedIps: ['10.77.0.1/32'], persistentKeepalive: 0 }, { publicKey: a.publicKey, persistentKeepalive: 25 }] });
      try {
        await msUntilPingReply(lab.ns('a'), '10.77.0.2', 5000);
        return;
      } catch (err) {
        if (attempt >= 3) throw err;
        pathRetries++;
      }
    }
  };

  const direct: number[] = [];
  const relayed: number[] = [];
  for (let i = 0; i < runs; i++) {
    await path('203.0.113.20:51820', '203.0.113.10:51820');
    direct.push((await iperf3(lab.ns('b'), lab.ns('a'), '10.77.0.2', seconds)).bitsPerSecond / 1e6);
    await path('203.0.113.2:47000', '203.0.113.2:47001');
    relayed.push((await iperf3(lab.ns('b'), lab.ns('a'), '10.77.0.2', seconds)).bitsPerSecond / 1e6);
    progress(`run ${i + 1}/${runs}: direct ${direct[i].toFixed(0)} Mbit/s, relay ${relayed[i].toFixed(0)} Mbit/s`);
  }
  const round = (x: number) => Math.round(x * 10) / 10;
  console.log(
    JSON.stringify(
      {
        benchmark: 'relay-throughput',
        relay: userspace ? 'userspace' : 'kernel fast path (nftables)',
        directMbps: { runs: direct.map(round), median: round(median(direct)) },
        relayMbps: { runs: relayed.map(round), median: round(median(relayed)) },
        relayShareOfDirectPct: round((100 * median(relayed)) / median(direct)),
        pathRetries,
        target: 90,
      },
      null,
      2,
    ),
  );
} finally {
  await lab.down();
}
