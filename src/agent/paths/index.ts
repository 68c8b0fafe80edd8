import type { Via } from '../../core/paths.js';
import type { PathCommandPath } from '../../core/protocol.js';
import type { PeerState } from '../../core/wireguard/uapi.js';
import { DirectPath } from './direct.js';
import { HubPath } from './hub.js';
import type { CommittedPath, PeerContext } from './path.js';
import { RelayPath } from './relay.js';

export type { CommittedPath, PeerContext } from './path.js';
export { nonePath } from './none.js';
export { punch, point } from './path.js';

interface PathModule<P> {
  enter(ctx: PeerContext, prev: CommittedPath, cmd: P, seq: number, peer: PeerState | undefined): Promise<CommittedPath>;
}

const MODULES: { [V in Via]: PathModule<Extract<PathCommandPath, { via: V }>> } = { direct: DirectPath, relay: RelayPath, hub: HubPath };

/** Enters the path the hub committed the pair to, from `prev`. */
export async function enterPath(ctx: PeerContext, prev: CommittedPath, cmd: PathCommandPath, seq: number, peer: PeerState | undefined): Promise<CommittedPath> {
  const next = await (MODULES[cmd.via] as PathModule<PathCommandPath>).enter(ctx, prev, cmd, seq, peer);
  prev.leave?.(ctx, next);
  return next;
}
