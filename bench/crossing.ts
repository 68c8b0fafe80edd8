/**
 * Why two agents' simultaneous punch could stall for 5 s, and that the roles of attempt.ts do not:
 * two wireguard-go peers behind two home NATs (no wgp2p), a fresh peer entry on both sides each
 * round, and then
 *
 *  - both: both sides send a handshake initiation at once (the attempt's punch without roles);
 *  - roles: b opens its NAT with an initiation for a throwaway peer (agent/open-nat.ts), its real
 *    peer stays silent, and a sends the one initiation.
 *
 * A round whose handshake has not completed on both sides within 1 s crossed: each side took the
 * other's initiation and refused the answer to its own (its peer's tx is then 148 + 92 bytes, an
 * initiation and a response, and rx 148), and WireGuard only tries again after 5 s.
 *
 * The lab has no latency, so both initiations meet only when they leave within a fraction of a
 * millisecond of each other. `--latency` stands for a real path: the internet core's links to
 * both routers get a 2 Mbit/s token bucket (tbf; the kernel here has no netem), and 20 datagrams
 * of 1400 bytes are queued toward each router just before the punch, so both initiations reach
 * the other side ~110 ms after they left.
 *
 *   node dist/bench/crossing.js [--mode both|roles] [--rounds 20] [--latency]
 */
import { IpAddress } from '../src/core/net/address.js';
import { Endpoint } from '../src/core/net/endpoint.js';
import { generateKeyPair } from '../src/core/wireguard/keys.js';
import { getDevice, setDevice } from '../src/core/wireguard/uapi.js';
import { openNat } from '../src/agent/open-nat.js';
import { openDevice } from '../src/core/wireguard/device.js';
import { Lab, teardownOnExit } from '../src/lab/lab.js';
import { natPair } from '../src/lab/topologies.js';
import { parseTopology } from '../src/lab/topology.js';
import { argNumber, argString, progress } from './stats.js';

teardownOnExit();
const mode = argString('mode', 'both');
if (mode !== 'both' && mode !== 'roles') throw new Error(`--mode must be both or roles, not "${mode}"`);
const rounds = argNumber('rounds', 20);
const latency = process.argv.includes('--latency');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const BURST = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(20):\n  s.sendto(b'x'*1400,('203.0.113.10',9)); s.sendto(b'x'*1400,('203.0.113.20',9))\n";

const lab = await Lab.up(parseTopology(natPair(`bcross${process.pid % 1000}`, 'restricted')));
try {
  const [ka, kb] = [generateKeyPair(), generateKeyPair()];
  const [ia, ib] = [`bxa${process.pid % 100000}`, `bxb${process.pid % 100000}`];
  await lab.startWireGuard('a', ia, { privateKey: ka.privateKey, listenPort: 51820, address: '10.66.0.1/24' });
  await lab.startWireGuard('b', ib, { privateKey: kb.privateKey, listenPort: 51820, address: '10.66.0.2/24' });
  const devB = await openDevice(ib);
  // Both routers keep the inside port: a is at 203.0.113.10:51820, b at 203.0.113.20:51820.
  const [ea, eb] = [Endpoint.of(IpAddress.parse('203.0.113.10'), 51820), Endpoint.of(IpAddress.parse('203.0.113.20'), 51820)];
  if (latency) for (const r of ['home1', 'home2']) await lab.exec('internet', 'tc', ['qdisc', 'replace', 'dev', r, 'root', 'tbf', 'rate', '2mbit', 'burst', '1600', 'latency', '2s']);
  const kick = (ifname: string, key: string) => setDevice(ifname, { peers: [{ publicKey: key, persistentKeepalive: 0 }, { publicKey: key, persistentKeepalive: 25 }] });
  let crossed = 0;
  const counters: string[] = [];
  for (let r = 0; r < rounds; r++) {
    await setDevice(ia, { peers: [{ publicKey: kb.publicKey, remove: true }] });
    await setDevice(ib, { peers: [{ publicKey: ka.publicKey, remove: true }] });
    // Earlier rounds' conntrack entries would keep both NATs open.
    for (const h of ['home1', 'home2']) await lab.exec(h, 'conntrack', ['-F'], { allowFail: true });
    await setDevice(ia, { peers: [{ publicKey: kb.publicKey, endpoint: eb, allowedIps: ['10.66.0.2/32'], persistentKeepalive: 0 }] });
    await setDevice(ib, { peers: [{ publicKey: ka.publicKey, endpoint: ea, ...(mode === 'both' ? { allowedIps: ['10.66.0.1/32'] } : {}), persistentKeepalive: 0 }] });
    if (mode === 'roles') await openNat(devB, ea);
    if (latency) await lab.exec('internet', 'python3', ['-c', BURST]);
    const t0 = Date.now();
    if (mode === 'both') await Promise.all([kick(ia, kb.publicKey), kick(ib, ka.publicKey)]);
    else await kick(ia, kb.publicKey);
    let done = false;
    while (!done && Date.now() - t0 < 1000) {
      const [pa, pb] = [(await getDevice(ia)).peers[0], (await getDevice(ib)).peers[0]];
      done = (pa?.lastHandshakeMs ?? 0) > 0 && (pb?.lastHandshakeMs ?? 0) > 0;
      if (!done) await sleep(10);
    }
    const [pa, pb] = [(await getDevice(ia)).peers[0], (await getDevice(ib)).peers[0]];
    if (!done) crossed++;
    counters.push(`a tx ${pa.txBytes} rx ${pa.rxBytes}, b tx ${pb.txBytes} rx ${pb.rxBytes}`);
    progress(`round ${r + 1}/${rounds}: ${done ? 'handshake' : 'NO handshake within 1 s'} (${counters.at(-1)})`);
  }
  console.log(JSON.stringify({ benchmark: 'crossing', mode, latency, rounds, noHandshakeWithin1s: crossed, counters }, null, 2));
} finally {
  await lab.down();
}
