import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { agentHubAllowedIps, p2pSubnet } from '../core/configs.js';
import { publicKeySchema } from '../core/protocol.js';
import type { HubRecord, NodeRecord, Store } from '../core/store.js';
import { enrolAddress, hashToken } from './directory.js';
import { readBody, reply, sourceAddress } from './http.js';

export interface EnrolContext {
  hub: HubRecord;
  nodes: NodeRecord[];
  store: Store;
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
  const source = sourceAddress(req);
  const p2p = p2pSubnet(ctx.hub);
  const node = ctx.nodes.find((n) => n.enrolKey && enrolAddress(ctx.hub.proxiedSubnet, p2p, n.address) === source);
  if (!node) return reply(res, 403, { error: 'enrolment must come through the tunnel of a join code' });
  if (node.enrolUsed) return reply(res, 409, { error: `this join code was already used (node "${node.name}" is enrolled); ask for a new one` });
  if (Date.now() > (node.enrolExpiresAt ?? 0)) return reply(res, 410, { error: `this join code expired at ${new Date(node.enrolExpiresAt ?? 0).toISOString()}; ask for a new one` });
  const body = await readBody(req, 4096).catch(() => undefined);
  let publicKey: string;
  try {
    publicKey = publicKeySchema.parse((JSON.parse(body ?? '') as { publicKey?: unknown }).publicKey);
  } catch {
    return reply(res, 400, { error: 'body must be {"publicKey": "<the device\'s WireGuard public key>"}' });
  }
  const token = randomBytes(32).toString('base64url');
  try {
    ctx.store.completeEnrolment(node.name, publicKey, hashToken(token));
  } catch (err) {
    return reply(res, 409, { error: (err as Error).message });
  }
  const hub = ctx.hub;
  await ctx.enrolled(node);
  reply(res, 200, {
    name: node.name,
    address: `${node.address}/${hub.address.split('/')[1]}`,
    listenPort: node.listenPort,
    token,
    hub: { publicKey: hub.publicKey, endpoint: hub.endpoint, allowedIps: agentHubAllowedIps(hub), keepalive: hub.agentHubKeepalive, apiUrl: `http://${hub.address.split('/')[0]}:${hub.apiPort}` },
  });
}
