import type { Logger } from '../core/log.js';
import type { WireGuardDevice } from '../core/wireguard/device.js';
import type { PeerState } from '../core/wireguard/uapi.js';

/**
 * Keeps the agent's hub peer sending at least once a second, so that the hub sees a new public
 * address of the router in front of us within a second.
 *
 * The hub is the one observer of this node's public address, and it sees it only in what we send
 * it. When the ISP renumbers the router (a DHCP renew, a PPPoE reconnect), nothing changes on our
 * own link, so network-watch.ts hears nothing; the router's old mappings are gone, and our peers
 * keep sending into them. Measured in the lab (`bench/renumber.ts`): under a 10 Hz ping, 4-9 s
 * without replies, until our next packet to the hub (the 10 s report over the control
 * connection, or the 25 s keepalive) showed the hub the new address and it re-decided the pair.
 *
 * WireGuard's persistent keepalive goes out K s after the last packet that crossed the peer in
 * either direction, and after a renumbering nothing from the hub reaches us, so the hub sees
 * the new address at most K s later, plus its device poll and the pair's attempt (~0.2 s). The
 * target is 2 s without replies: K = 1, the smallest interval WireGuard has (K = 2 would leave
 * 2 s plus the attempt). Plain clients already use 1 s toward the hub, for the same reason.
 *
 * Why a keepalive and not a message over the control connection (`bench/hub-probe.ts`): a
 * keepalive is one 60-byte packet, sent only when nothing else went to the hub that second, and
 * answered by nothing; a WebSocket ping is a ping, a pong and TCP's acknowledgements, all through
 * the tunnel, and the hub's Node process handles each one.
 */
export const HUB_KEEPALIVE_S = 1;

export class HubKeepalive {
  constructor(
    private readonly device: WireGuardDevice,
    private readonly log: Logger,
  ) {}

  /**
   * With a reading of the hub peer, at each tick: shortens its keepalive if it is longer (or
   * off). wg-quick sets the config's value at every `up`, so this also catches a re-up.
   */
  async check(hubPeer: PeerState | undefined): Promise<void> {
    if (!hubPeer) return;
    const k = hubPeer.persistentKeepalive;
    if (k > 0 && k <= HUB_KEEPALIVE_S) return;
    await this.device.set({ peers: [{ publicKey: hubPeer.publicKey, persistentKeepalive: HUB_KEEPALIVE_S }] });
    this.log.info({ was: k, now: HUB_KEEPALIVE_S }, 'keepalive toward the hub shortened, so that the hub sees a new public address of our router within a second');
  }
}
