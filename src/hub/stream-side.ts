import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../core/log.js';
import { IpAddress } from '../core/net/address.js';
import { Endpoint } from '../core/net/endpoint.js';
import type { StreamSide } from '../relay/relay.js';
import { StreamServer, type StreamLimits } from '../relay/stream-server.js';
import { hashToken } from './directory.js';
import { isPending, type NodeRecord } from './store/model.js';
import { hubStreamIdentity } from './stream-identity.js';

/**
 * The hub's stream side (issue 12), composed: the identity and port from the hub's directory
 * (stream-identity.ts), agents authenticated by their token as the control API does (without the
 * tunnel address: the stream is what carries the tunnel), their hub peers forwarded to the hub's
 * own WireGuard port on loopback, and their allocation sides on the built-in relay.
 */

/** Whether `token` is the token of the agent with `publicKey`: constant time over the hashes, as control-api.ts. */
export function agentTokenCheck(byKey: (publicKey: string) => NodeRecord | undefined): (publicKey: string, token: string) => boolean {
  return (publicKey, token) => {
    const node = byKey(publicKey);
    if (!node || isPending(node) || node.kind !== 'agent' || !node.tokenHash) return false;
    const a = Buffer.from(hashToken(token), 'hex');
    const b = Buffer.from(node.tokenHash, 'hex');
    return a.length === b.length && timingSafeEqual(a, b);
  };
}

export interface HubStreamSideOptions {
  dir: string;
  /** The port from `hub init` unless given (`hub run --tcp-port`). */
  port?: number;
  byKey(publicKey: string): NodeRecord | undefined;
  /** The built-in relay, if the hub runs one. */
  relay?: { streamSide(id: string, publicKey: string): StreamSide };
  /** The hub's WireGuard listen port: hub peers on a stream reach it on loopback. */
  listenPort: number;
  limits?: Partial<StreamLimits>;
  log: Logger;
}

/** The running stream side, or undefined for a hub made without one (--no-tcp, or before this release). */
export async function startHubStreamSide(opts: HubStreamSideOptions): Promise<{ server: StreamServer; port: number } | undefined> {
  const found = hubStreamIdentity(opts.dir);
  if (!found) return undefined;
  const relay = opts.relay;
  const server = new StreamServer({
    tls: found.identity,
    authenticate: agentTokenCheck(opts.byKey),
    streamSide: (id, k) => (relay ? relay.streamSide(id, k) : { kind: 'unknown' }),
    hub: { endpoint: Endpoint.of(IpAddress.parse('127.0.0.1'), opts.listenPort), source: IpAddress.parse('127.0.0.1') },
    limits: opts.limits,
    log: opts.log,
  });
  const port = opts.port ?? found.port;
  // Every address, both families: nodes reach it at the hub's endpoints' hosts, which may be a DNS name.
  const bound = await server.listen('::', port).catch(async (err: Error) => {
    if (!/EAFNOSUPPORT|EADDRNOTAVAIL/.test(err.message)) throw err;
    return server.listen('0.0.0.0', port);
  });
  opts.log.info({ port: bound, pin: found.identity.pin }, 'stream side listening (WireGuard over TLS)');
  return { server, port: bound };
}
