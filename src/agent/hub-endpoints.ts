import type { Logger } from '../core/log.js';
import { HostPort } from '../core/net/endpoint.js';
import type { WireGuardDevice } from '../core/wireguard/device.js';
import type { PeerState } from '../core/wireguard/uapi.js';

/**
 * When the hub goes quiet on the endpoint the device's config names (an IPv6-only network given
 * the hub's IPv4 endpoint, an outage of one family), point the hub peer at the hub's next
 * endpoint. Quiet means: no control connection, and no handshake with the hub for QUIET_MS.
 *
 * 5 s because wireguard-go sends at most one handshake initiation per 5 s (REKEY_TIMEOUT): a
 * switch sooner than that would send nothing new, and each switch is then answered within a
 * round trip if that endpoint works. This is the one change an agent makes to its hub peer
 * besides the proxied routes.
 */

const QUIET_MS = 5000;

export class HubEndpoints {
  private index = 0;
  private lastSwitch: number;

  constructor(
    private readonly endpoints: readonly string[],
    private readonly device: WireGuardDevice,
    private readonly log: Logger,
    now: number,
  ) {
    this.lastSwitch = now;
  }

  /** With a reading of the hub peer, at each tick: switches once the hub was quiet long enough. */
  async check(hubPeer: PeerState | undefined, linkUp: boolean, keepalive: number, now: number): Promise<void> {
    if (this.endpoints.length < 2 || !hubPeer || linkUp) {
      this.lastSwitch = now;
      return;
    }
    const lastHeard = Math.max(hubPeer.lastHandshakeMs, this.lastSwitch);
    if (now - lastHeard < QUIET_MS) return;
    this.index = (this.index + 1) % this.endpoints.length;
    this.lastSwitch = now;
    const next = HostPort.parse(this.endpoints[this.index]);
    const endpoint = next.endpoint;
    // A DNS name is resolved by wg-quick at start; the agent only switches between addresses.
    if (!endpoint) return;
    this.log.warn({ endpoint: endpoint.toString() }, 'no answer from the hub; trying its other endpoint');
    await this.device.set({
      peers: [
        { publicKey: hubPeer.publicKey, endpoint, persistentKeepalive: 0 },
        { publicKey: hubPeer.publicKey, persistentKeepalive: keepalive || 25 },
      ],
    });
  }
}
