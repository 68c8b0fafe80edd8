import type { Logger } from '../core/log.js';
import { IpAddress } from '../core/net/address.js';
import { Endpoint, HostPort } from '../core/net/endpoint.js';
import type { JoinCode } from '../core/join-code.js';
import { proxyFor } from '../core/stream/connect.js';
import type { StreamConfig } from '../core/stream/config.js';
import { joinProof } from '../core/stream/join-proof.js';
import { proxyEnvironment } from '../core/stream/system-proxy.js';
import { publicKeyOf } from '../core/wireguard/keys.js';
import { StreamShim } from './stream-shim.js';

/**
 * How `wgp2p join` reaches the hub (issue 12): the one-time tunnel's hub peer points at each of
 * the hub's UDP endpoints in turn, then, if the code names the hub's stream side and no UDP
 * handshake came, at a local port of a StreamShim that carries the tunnel over TLS on TCP (443
 * by default), straight or through the HTTP proxy of HTTPS_PROXY. WireGuard's handshake over
 * the stream proves both ends exactly as over UDP; the stream's own credential is the code's
 * proof (core/stream/join-proof.ts).
 */

/** Without a stream to fall back to, UDP gets all the time there is (as before the stream side). */
export const UDP_ALONE_MS = 8000;

/**
 * With a stream to fall back to, what UDP gets before it. The handshake is one round trip after
 * the first initiation, which wireguard-go sends as soon as the peer has an endpoint; measured in
 * the lab's joins (stream-join and join lab tests, load average 10-11) it took 11, 34, 66 and
 * 72 ms, and a long real path (satellite) takes 600 ms. If that first initiation is lost, the
 * next one goes 5 s later (REKEY_TIMEOUT): waiting for it would cost more than the stream does
 * (opened beside UDP meanwhile, its handshake took 8-80 ms in the lab). So: 2 s in all, which
 * keeps a join from a UDP-blocked network within the issue's 5 s (3.5-4.8 s measured in six
 * joins, from the start of `wgp2p join` to its last line).
 */
export const UDP_BEFORE_STREAM_MS = 2000;

/**
 * Per stream relay: TCP (or the proxy's CONNECT) and TLS take their own timeouts of 5 s each
 * (connect.ts); the handshake over the stream is one more round trip. A proxy that is slow
 * to open the tunnel should not cost the join.
 */
export const STREAM_TRY_MS = 12_000;

export type JoinAttempt =
  | { readonly kind: 'udp'; readonly endpoint: string; readonly waitMs: number }
  | { readonly kind: 'stream'; readonly relay: HostPort; readonly waitMs: number };

/** What the join used, for its progress lines. */
export type JoinTransport =
  | { readonly kind: 'udp'; readonly endpoint: string; readonly handshakeMs: number }
  | { readonly kind: 'stream'; readonly relay: string; readonly proxy: string | undefined; readonly handshakeMs: number };

function withPort(hp: HostPort, port: number): HostPort {
  return HostPort.parse(hp.address?.family === 6 ? `[${hp.host}]:${port}` : `${hp.host}:${port}`);
}

/**
 * The attempts in order: each UDP endpoint with an equal share of the UDP time, then the stream
 * side at each endpoint's host (one per host). Each UDP endpoint after the first gets a fresh peer
 * entry (enrol.ts), because wireguard-go sends at most one initiation per 5 s to a peer it tried.
 */
export function joinPlan(endpoints: readonly string[], stream: StreamConfig | undefined, opts: { udpMs?: number; streamMs?: number } = {}): JoinAttempt[] {
  const udpMs = opts.udpMs ?? (stream ? UDP_BEFORE_STREAM_MS : UDP_ALONE_MS);
  const plan: JoinAttempt[] = endpoints.map((endpoint) => ({ kind: 'udp', endpoint, waitMs: udpMs / endpoints.length }));
  if (!stream) return plan;
  const hosts = new Set<string>();
  for (const e of endpoints) {
    const relay = withPort(HostPort.parse(e), stream.port);
    if (hosts.has(relay.host)) continue;
    hosts.add(relay.host);
    plan.push({ kind: 'stream', relay, waitMs: opts.streamMs ?? STREAM_TRY_MS });
  }
  return plan;
}

/** A proxy's address only: its URL may carry a user and password, which are never printed. */
export function proxyShown(relay: HostPort, env: NodeJS.ProcessEnv = proxyEnvironment()): string | undefined {
  try {
    return proxyFor(relay, env)?.host;
  } catch {
    // The shim says what is wrong with it, in its refusal.
    return undefined;
  }
}

export function describeAttempt(a: JoinAttempt, env: NodeJS.ProcessEnv = process.env): string {
  if (a.kind === 'udp') return `UDP to ${a.endpoint}`;
  const proxy = proxyShown(a.relay, env);
  return `TLS over TCP to ${a.relay.toString()}${proxy ? ` through the HTTP proxy ${proxy}` : ''}`;
}

export function describeTransport(t: JoinTransport): string {
  return t.kind === 'udp'
    ? `over UDP (${t.endpoint}, handshake in ${t.handshakeMs} ms)`
    : `over the stream (TLS to ${t.relay}${t.proxy ? ` through the HTTP proxy ${t.proxy}` : ''}, handshake in ${t.handshakeMs} ms; UDP to the hub gave none)`;
}

/**
 * The join's stream: a shim toward `relay` that presents the code's proof and carries only the
 * hub channel. `refusal` is set when the relay (or the pin check, or the proxy) said no in a way
 * that retrying does not fix, so the join stops with those words instead of waiting.
 */
export class JoinStream {
  refusal: string | undefined;
  private readonly shim: StreamShim;

  constructor(code: Pick<JoinCode, 'key' | 'hubPublicKey'>, stream: StreamConfig, readonly relay: HostPort, wireguardPort: number, log: Logger) {
    const enrolKey = publicKeyOf(code.key);
    this.shim = new StreamShim({
      relay,
      trust: { pin: stream.pin },
      transport: 'tls',
      credentials: { kind: 'join', enrolKey, proof: joinProof(code.key, enrolKey, code.hubPublicKey) },
      wireguard: Endpoint.of(IpAddress.parse('127.0.0.1'), wireguardPort),
      log,
      onPhase: (p) => {
        if (p.kind === 'backoff' && p.permanent) this.refusal = p.reason;
      },
    });
  }

  /** Starts the stream; the endpoint to point the join tunnel's hub peer at. */
  async start(): Promise<Endpoint> {
    this.shim.start();
    return this.shim.open({ kind: 'hub' });
  }

  get up(): boolean {
    return this.shim.state.kind === 'up';
  }

  /** Why the stream is not up, if it failed at least once. */
  get lastFailure(): string | undefined {
    const s = this.shim.state;
    return s.kind === 'backoff' ? s.reason : undefined;
  }

  stop(): void {
    this.shim.stop();
  }
}
