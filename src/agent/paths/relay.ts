import type { Endpoint } from '../../core/net/endpoint.js';
import type { PeerState } from '../../core/wireguard/uapi.js';
import { TCP_RELAY_ID } from '../../core/candidates/tcp-relay.js';
import type { RemoteStream } from '../relay-streams.js';
import { point, type CommittedPath, type PeerContext } from './path.js';

/** The peer's packets are rarely direct while relayed; report it at most this often (each report may start an attempt). */
const DIRECT_RX_REPORT_MS = 5000;

/**
 * Both sides send to a relay allocation. On a `tcp-relay` path (core/candidates/tcp-relay.ts)
 * this node's side of the allocation rides the hub's TLS stream: the peer points at the shim's
 * local port for the allocation (agent/hub-stream.ts), which carries it to the relay.
 * The relay learns a node's port only from a handshake,
 * and WireGuard does not handshake because an endpoint changed: a new allocation starts a fresh
 * session (remove and re-add the peer). The move counts once the peer's packets come through it.
 */
export class RelayPath implements CommittedPath {
  readonly via = 'relay';
  readonly kind = null;
  readonly watched = true;
  readonly hasEntry = true;
  reAdded = false;
  private confirmed = false;
  private lastDirectReport = -Infinity;

  private constructor(
    readonly seq: number,
    readonly endpoint: Endpoint,
    readonly relayId: string,
    /** This side rides the stream: `endpoint` is the shim's local port for the allocation. */
    readonly overStream: boolean,
    readonly carriedBy: string,
  ) {}

  get relay(): Endpoint {
    return this.endpoint;
  }

  static async enter(ctx: PeerContext, prev: CommittedPath, cmd: { endpoint: Endpoint; relayId: string; kind?: typeof TCP_RELAY_ID; relay?: string; stream?: RemoteStream }, seq: number, peer: PeerState | undefined): Promise<RelayPath> {
    const overStream = cmd.kind === TCP_RELAY_ID;
    if (overStream && !ctx.stream) throw new Error(`the hub put peer ${ctx.info().name} on a relay over the TLS stream, and this agent has no stream transport`);
    // On a relay on its own machine, this side rides that relay's stream side, opened with the hub's ticket.
    const endpoint = overStream ? await ctx.stream!.openAllocation(cmd.relayId, cmd.stream) : cmd.endpoint;
    const name = cmd.relay ?? 'relay';
    const carriedBy = !overStream ? `${name} at ${cmd.endpoint.toString()}` : cmd.stream ? `${name} over its stream side at ${cmd.stream.endpoint.toString()}` : `${name} over the hub's stream`;
    const path = new RelayPath(seq, endpoint, cmd.relayId, overStream, carriedBy);
    // The same allocation on the other transport is a side the relay must latch again (from a handshake).
    if (prev instanceof RelayPath && prev.relayId === cmd.relayId && prev.overStream === overStream) {
      path.confirmed = prev.confirmed;
      path.lastDirectReport = prev.lastDirectReport;
      if (!peer?.endpoint?.equals(endpoint)) await point(ctx, endpoint);
      return path;
    }
    path.reAdded = true;
    await ctx.device.set({ peers: [{ publicKey: ctx.key, remove: true }] });
    await ctx.device.set({
      peers: [
        { publicKey: ctx.key, endpoint, allowedIps: ctx.info().allowedIps, persistentKeepalive: 0 },
        { publicKey: ctx.key, persistentKeepalive: ctx.keepalive() },
      ],
    });
    return path;
  }

  leave(ctx: PeerContext, next: CommittedPath): void {
    if (!this.overStream) return;
    if (next instanceof RelayPath && next.overStream && next.relayId === this.relayId) return;
    ctx.stream?.closeAllocation(this.relayId);
  }

  show() {
    return this.confirmed ? ('relayed' as const) : ('relaying' as const);
  }

  busy(): boolean {
    return !this.confirmed;
  }

  async tick(ctx: PeerContext, peer: PeerState | undefined, grew: boolean, now: number): Promise<void> {
    const e = peer?.endpoint;
    if (!this.confirmed && (peer?.rxBytes ?? 0) > 0 && e?.equals(this.endpoint)) {
      this.confirmed = true;
      ctx.emit({ type: 'path-event', event: 'relay-ok', publicKey: ctx.key, seq: this.seq });
      ctx.changed();
    }
    if (e && !e.equals(this.endpoint) && grew) {
      // The peer's packets arrive directly (WireGuard moved the endpoint): worth an attempt.
      // Until the hub coordinates one, keep sending through the relay.
      if (now - this.lastDirectReport > DIRECT_RX_REPORT_MS) {
        this.lastDirectReport = now;
        ctx.emit({ type: 'path-event', event: 'heard', publicKey: ctx.key, seq: this.seq, endpoint: e, afterMs: null });
      }
      await point(ctx, this.endpoint);
    }
  }
}
