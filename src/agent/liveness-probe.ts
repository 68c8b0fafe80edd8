import { createSocket, type Socket } from 'node:dgram';
import { Cidr } from '../core/net/cidr.js';
import type { IpAddress } from '../core/net/address.js';

/**
 * Sends the liveness probe (liveness.ts): one UDP datagram to the discard port of the peer's
 * tunnel address. The route to that address is the WireGuard interface, so WireGuard carries it
 * as data and the peer's WireGuard answers with a keepalive within 10 s; what the peer's own
 * stack does with the datagram (nothing listens on port 9) does not matter.
 */
const DISCARD_PORT = 9;
const PAYLOAD = Buffer.from('wgp2p liveness probe');

export class LivenessProbe {
  private sockets = new Map<4 | 6, Socket>();

  /** The peer's tunnel address from its allowed IPs: the first host route (a /32 or /128). */
  static target(allowedIps: readonly string[]): IpAddress | undefined {
    for (const text of allowedIps) {
      const c = Cidr.tryParse(text);
      if (c && c.prefix === (c.network.family === 4 ? 32 : 128)) return c.network;
    }
    return undefined;
  }

  send(to: IpAddress): void {
    let s = this.sockets.get(to.family);
    if (!s) {
      s = createSocket(to.family === 4 ? 'udp4' : 'udp6');
      // A send that fails (no route yet, the interface going down) is a probe nobody answers: the
      // liveness verdict says what that means.
      s.on('error', () => undefined);
      s.unref();
      this.sockets.set(to.family, s);
    }
    s.send(PAYLOAD, DISCARD_PORT, to.toString(), () => undefined);
  }

  close(): void {
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }
}
