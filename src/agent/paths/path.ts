import type { KindId } from '../../core/candidates/index.js';
import type { Logger } from '../../core/log.js';
import type { Endpoint } from '../../core/net/endpoint.js';
import type { PeerStateName, Via } from '../../core/paths.js';
import type { PathEvent, PeerInfo } from '../../core/protocol.js';
import type { WireGuardDevice } from '../../core/wireguard/device.js';
import type { PeerState } from '../../core/wireguard/uapi.js';
import type { RemoteStream } from '../relay-streams.js';

/**
 * The path one mesh peer is committed to, on the agent's side. Each via is one module
 * (direct.ts, relay.ts, hub.ts, and none.ts before any): how to enter it on the device, what
 * status shows, and what to watch on each reading of the device.
 */

/** This node's relay sides on the hub's stream (agent/hub-stream.ts): where a tcp-relay path points the peer. */
export interface StreamChannels {
  /** `remote`: the side rides a relay's own stream side (with the hub's ticket), not the hub's. */
  openAllocation(relayId: string, remote?: RemoteStream): Promise<Endpoint>;
  closeAllocation(relayId: string): void;
}

export interface PeerContext {
  readonly key: string;
  info(): PeerInfo;
  readonly device: WireGuardDevice;
  keepalive(): number;
  emit(ev: PathEvent): void;
  changed(): void;
  readonly log: Logger;
  /** Absent: this agent has no stream transport (a tcp-relay path is then refused). */
  readonly stream?: StreamChannels;
}

export interface CommittedPath {
  readonly via: Via | 'none';
  /** The command that committed it: a `lost` report names it. */
  readonly seq: number;
  /** Where our data goes on this path (null: nowhere of our choosing). */
  readonly endpoint: Endpoint | null;
  /** The relay this path sends to, whose packets are never evidence of a direct path. */
  readonly relay: Endpoint | null;
  readonly relayId: string | null;
  /** Relay paths: which relay carries it, and how, for status. */
  readonly carriedBy?: string;
  /** Direct paths: the candidate kind it runs over. */
  readonly kind: KindId | null;
  /** A dead path is reported to the hub as lost. */
  readonly watched: boolean;
  /** The peer has an entry of its own on the device (not routed through the hub). */
  readonly hasEntry: boolean;
  /** Entering it re-created the peer's entry: its counters started again from zero. */
  readonly reAdded: boolean;
  /** What `status` shows. */
  show(): PeerStateName;
  /** The pair moves from this path to `next`: give back what this one holds (a stream channel). */
  leave?(ctx: PeerContext, next: CommittedPath): void;
  /** The watch loop should read the device often. */
  busy(): boolean;
  /** A reading of the device while no attempt runs; `grew`: the peer's received bytes grew. */
  tick(ctx: PeerContext, peer: PeerState | undefined, grew: boolean, now: number): Promise<void>;
}

/** Make WireGuard send now: a persistent-keepalive interval going 0 -> K sends within ~5 ms (measured); setting an endpoint alone sends nothing. */
export async function punch(ctx: PeerContext, endpoint?: Endpoint): Promise<void> {
  await ctx.device.set({
    peers: [
      { publicKey: ctx.key, allowedIps: ctx.info().allowedIps, ...(endpoint ? { endpoint } : {}), persistentKeepalive: 0 },
      { publicKey: ctx.key, persistentKeepalive: ctx.keepalive() },
    ],
  });
}

export async function point(ctx: PeerContext, endpoint: Endpoint): Promise<void> {
  await ctx.device.set({ peers: [{ publicKey: ctx.key, endpoint }] });
}
