import type { CommittedPath, PeerContext } from './path.js';

/** Through the hub (proxied mode, ours or the peer's): no peer entry; agent.ts routes the peer's addresses to the hub peer. */
export class HubPath implements CommittedPath {
  readonly via = 'hub';
  readonly endpoint = null;
  readonly relay = null;
  readonly relayId = null;
  readonly kind = null;
  readonly watched = false;
  readonly reAdded = false;
  readonly hasEntry = false;

  private constructor(readonly seq: number) {}

  static async enter(ctx: PeerContext, prev: CommittedPath, _cmd: unknown, seq: number): Promise<HubPath> {
    if (prev.hasEntry) await ctx.device.set({ peers: [{ publicKey: ctx.key, remove: true }] });
    return new HubPath(seq);
  }

  show() {
    return 'proxied' as const;
  }

  busy(): boolean {
    return false;
  }

  async tick(): Promise<void> {}
}
