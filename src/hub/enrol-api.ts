import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { IpAddress } from '../core/net/address.js';
import { publicKeySchema } from '../core/protocol.js';
import { isLowOrder } from '../core/wireguard/keys.js';
import { hostNumberOfProxied, nodeAddress6 } from './address-plan.js';
import { agentHubAllowedIps, hubEndpointsFor } from './configs.js';
import { hashToken } from './directory.js';
import { hubApiUrl } from './files.js';
import { readBody, reply, sourceAddress } from './http.js';
import type { HubSettings, NodeRecord } from './store/model.js';
import { retryWhileBusy } from './store/busy.js';
import { StoreError, type DirectoryStore } from './store/store.js';
import { parseJson } from '../core/json.js';

export interface EnrolContext {
  hub: HubSettings;
  /** The node at a host number, from the hub's in-memory directory. */
  nodeAt(hostNumber: number): NodeRecord | undefined;
  store: DirectoryStore;
  /**
   * The device's own key is in the store: put it on the interface before replying, so that the
   * device's first handshake with its own key finds it (a missed one costs a 5 s retry). The
   * one-time key keeps its own address, so the reply still goes out through its tunnel.
   */
  enrolled(node: NodeRecord): Promise<void>;
}

/**
 * A device joining with a code. It reaches us through a tunnel made with the code's one-time key,
 * so WireGuard has already proved both sides: the device holds the code, and we hold the hub key
 * the code names. We answer on that tunnel, then swap the one-time key for the device's own.
 */
export async function handleEnrol(req: IncomingMessage, res: ServerResponse, ctx: EnrolContext): Promise<void> {
  const source = IpAddress.tryParse(sourceAddress(req));
  // The join tunnel's address is the node's host number in the proxied subnet.
  const host = source && hostNumberOfProxied(ctx.hub, source);
  const node = host === undefined ? undefined : ctx.nodeAt(host);
  if (!node || !node.enrolKey) return reply(res, 403, { error: 'enrolment must come through the tunnel of a join code' });
  const expired = () => Date.now() > (node.enrolExpiresAt ?? 0);
  if (!node.enrolUsed && expired()) return reply(res, 410, { error: `this join code expired at ${new Date(node.enrolExpiresAt ?? 0).toISOString()}; ask for a new one` });
  const body = await readBody(req, 4096).catch(() => undefined);
  let publicKey: string;
  try {
    publicKey = publicKeySchema.parse((parseJson(body ?? '') as { publicKey?: unknown } | null)?.publicKey);
  } catch {
    return reply(res, 400, { error: 'body must be {"publicKey": "<the device\'s WireGuard public key>"}' });
  }
  if (publicKey === ctx.hub.publicKey || isLowOrder(publicKey)) return reply(res, 400, { error: 'that public key cannot be a device\'s (it is the hub\'s own, or a weak key that every private key agrees on); let the device make a fresh one' });
  // The same device asking again: its reply was lost on the way. Anyone else: the code is spent.
  const retry = node.enrolUsed && node.publicKey === publicKey;
  if (node.enrolUsed && !retry) return reply(res, 409, { error: `this join code was already used (node "${node.name}" is enrolled); ask for a new one` });
  // Again at the commit: the body may have taken a while.
  if (!retry && expired()) return reply(res, 410, { error: `this join code expired at ${new Date(node.enrolExpiresAt ?? 0).toISOString()}; ask for a new one` });
  const token = randomBytes(32).toString('base64url');
  let enrolled: NodeRecord;
  try {
    enrolled = await retryWhileBusy(() => ctx.store.completeEnrolment(node.name, publicKey, hashToken(token)));
  } catch (err) {
    // The store could not be written: the code is still unused, the device may simply try again.
    const unavailable = err instanceof StoreError && (err.code === 'busy' || err.code === 'unavailable');
    return reply(res, unavailable ? 503 : 409, { error: unavailable ? 'the hub cannot write its store just now; the join code is still good, run "wgp2p join" again in a minute' : (err as Error).message });
  }
  try {
    await ctx.enrolled(enrolled);
  } catch (err) {
    // The device's key could not be put on the interface: take the completion back, so that
    // the code is still good and the device can simply try again (issue 10, finding 1).
    if (!retry) await retryWhileBusy(() => ctx.store.undoEnrolment(node.name, publicKey));
    throw err;
  }
  const hub = ctx.hub;
  reply(res, 200, {
    name: node.name,
    address: `${node.address}/${hub.address.prefix}`,
    address6: `${nodeAddress6(hub, node.hostNumber)}/${hub.address6.prefix}`,
    listenPort: node.listenPort,
    token,
    hub: { publicKey: hub.publicKey, endpoints: hubEndpointsFor(hub, node).map(String), allowedIps: agentHubAllowedIps(hub), keepalive: hub.agentHubKeepalive, apiUrl: hubApiUrl(hub) },
  });
}
