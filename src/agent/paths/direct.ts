import type { KindId } from '../../core/candidates/index.js';
import type { Endpoint } from '../../core/net/endpoint.js';
import type { PeerState } from '../../core/wireguard/uapi.js';
import { point, punch, type CommittedPath, type PeerContext } from './path.js';

/** Peer to peer over one candidate. WireGuard follows the peer's NAT mapping by itself; so do we. */
export class DirectPath implements CommittedPath {
  readonly via = 'direct';
  readonly relayId = null;
  readonly watched = true;
  readonly reAdded = false;
  readonly hasEntry = true;

  private constructor(
    readonly seq: number,
    readonly kind: KindId,
    public endpoint: Endpoint,
    /** The relay the pair used before, if any: a late packet through it must not pull us back. */
    readonly relay: Endpoint | null,
  ) {}

  static async enter(ctx: PeerContext, prev: CommittedPath, cmd: { kind: KindId; endpoint: Endpoint }, seq: number, peer: PeerState | undefined): Promise<DirectPath> {
    const path = new DirectPath(seq, cmd.kind, cmd.endpoint, prev.relay);
    // The peer may have roamed us back to the relay in between: point at the direct path and let it hear us there.
    if (!peer?.endpoint?.equals(cmd.endpoint)) await punch(ctx, cmd.endpoint);
    return path;
  }

  show() {
    return 'direct' as const;
  }

  busy(): boolean {
    return false;
  }

  async tick(ctx: PeerContext, peer: PeerState | undefined): Promise<void> {
    const e = peer?.endpoint;
    if (!e) return;
    // A packet the peer still sent through the relay moved us back there: we decided direct.
    if (e.equals(this.relay)) await point(ctx, this.endpoint);
    // The peer's NAT gave it a new port (or it moved): WireGuard followed it, and so do we.
    else if (!e.equals(this.endpoint)) this.endpoint = e;
  }
}
