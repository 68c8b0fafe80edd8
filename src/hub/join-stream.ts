import { checkJoinProof } from '../core/stream/join-proof.js';
import type { JoinVerdict } from '../relay/stream-session.js';
import type { HubSettings, NodeRecord } from './store/model.js';

/**
 * Which join streams the hub's stream side takes (issue 12: `wgp2p join` from a network that
 * blocks UDP). The credential is the join code's proof (core/stream/join-proof.ts), good exactly
 * while the code is: its node still waits for its device (not used) and the code has not
 * expired. What the stream may then do is the join tunnel's business: its hub peer only
 * (stream-session.ts), which reaches the hub's WireGuard, where the one-time key's peer is fenced
 * to the enrolment API (join-fence.ts) as over UDP.
 *
 * The state of a code (used, expired) is told only to whoever proves they hold it: the proof is
 * checked first, so a guessed or stale key learns nothing but "no".
 */

/**
 * A join takes a few seconds (a handshake, one request of at most 10 s, enrol.ts); a minute
 * bounds what a device that holds a code can keep open after it, used or not.
 */
export const JOIN_STREAM_LIFETIME_MS = 60_000;

export interface JoinStreamDeps {
  hub: Pick<HubSettings, 'privateKey' | 'publicKey'>;
  /** The node whose join code has this one-time public key, if any (used or not). */
  byEnrolKey(enrolKey: string): NodeRecord | undefined;
  now(): number;
}

const NO = 'no join code the hub knows has this key and proof: the code was replaced by a newer one, or it is damaged; ask for a new one ("wgp2p node add NAME --agent --join")';

export function joinStreamCheck(deps: JoinStreamDeps): (enrolKey: string, proof: string) => JoinVerdict {
  return (enrolKey, proof) => {
    const node = deps.byEnrolKey(enrolKey);
    if (!node || node.kind === 'client' || node.enrolKey !== enrolKey) return { ok: false, reason: NO };
    if (!checkJoinProof(deps.hub.privateKey, deps.hub.publicKey, enrolKey, proof)) return { ok: false, reason: NO };
    if (node.enrolUsed) return { ok: false, reason: `this join code was already used (node "${node.name}" is enrolled); ask for a new one` };
    const expiresAt = node.enrolExpiresAt ?? 0;
    const now = deps.now();
    if (now > expiresAt) return { ok: false, reason: `this join code expired at ${new Date(expiresAt).toISOString()}; ask for a new one` };
    return { ok: true, lifetimeMs: JOIN_STREAM_LIFETIME_MS };
  };
}

/** The lookup for joinStreamCheck over the hub's nodes: one scan per join hello (outstanding codes are few; hellos are bounded by the stream side's connection limits). */
export function byEnrolKeyIn(nodes: () => Iterable<NodeRecord>): (enrolKey: string) => NodeRecord | undefined {
  return (enrolKey) => {
    for (const n of nodes()) if (n.enrolKey === enrolKey) return n;
    return undefined;
  };
}
