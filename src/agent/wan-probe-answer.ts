import { createSocket } from 'node:dgram';
import type { Logger } from '../core/log.js';
import type { Endpoint } from '../core/net/endpoint.js';

/**
 * The agent's half of the hub's WAN probe (hub/wan-probe.ts): one datagram to the hub's probe
 * socket from a socket bound to the port the hub probed. The hub reads the port it arrives from.
 * A socket of its own, not WireGuard's: Linux NAT gives a socket's later flows the mapping of its
 * newest one, so after a probe that a leaky router took, WireGuard's next peers would all have
 * seen the probe's port (measured in the lab).
 */
const PAYLOAD = Buffer.from('wgp2p wan probe answer\n');

export async function answerWanProbe(to: Endpoint, from: number, log: Logger): Promise<void> {
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(from, () => resolve());
    });
    await new Promise<void>((resolve, reject) => socket.send(PAYLOAD, to.port, to.address.toString(), (err) => (err ? reject(err) : resolve())));
  } catch (err) {
    // Port taken, no route: the hub's probe times out and it learns nothing.
    log.debug({ err, from }, 'could not answer the WAN probe');
  } finally {
    socket.close();
  }
}
