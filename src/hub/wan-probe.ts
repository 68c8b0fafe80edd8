import { createSocket, type Socket } from 'node:dgram';
import { realClock, type Cancel, type Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import { IpAddress } from '../core/net/address.js';
import { Endpoint } from '../core/net/endpoint.js';
import type { HubMessage } from '../core/protocol.js';

/**
 * Learns whether an agent's router takes unsolicited packets on its WAN side, before the node's
 * first hole punch, which is when it matters (nat-knowledge.ts, hub/pairs/initiator.ts). The
 * lab's truth table measures it the same way ("port after WAN probe"):
 * 1. a datagram from the hub's probe socket to the public endpoint the hub sees the node at,
 *    which nothing there expects;
 *    at a port of the hub's choosing (the NAT keeps ports, so the node's socket there will be
 *    mapped to the same port unless the router took the datagram);
 * 2. then (once the datagram has left, so it reaches the router first) the agent is told to
 *    send one datagram from a socket bound to that port to the probe socket (not from
 *    WireGuard's: agent/wan-probe-answer.ts says why);
 * 3. the port that datagram comes from is the node's port after a WAN probe: the one probed
 *    (the router dropped the probe), or another (the router took it, and its conntrack entry
 *    holds the port for the probe's source). Only a NAT that keeps ports can tell; the caller
 *    probes only those.
 * It costs two datagrams and one message per node, at connect and when its address changes.
 *
 * Behind a hub whose router forwards only WireGuard's port, the agent's packet never reaches
 * the probe socket: the probe times out and nothing is learned (the pair then takes turns).
 */

export type NatProbeCommand = Extract<HubMessage, { type: 'nat-probe' }>;

export interface WanProbeDeps {
  send(key: string, m: NatProbeCommand): void;
  /** `port`: where the node's datagram came from after the probe of `probed`; null: nothing came in time. */
  result(key: string, port: number | null, probed: Endpoint): void;
  /** The port probed (1024-65535): random, so that no probe meets an earlier one's conntrack entry. */
  pickPort?(): number;
  log: Logger;
  clock?: Clock;
}

/** wireguard-go sends the agent's packet within ~5 ms of the request; 1 s covers a loaded hub and a real RTT. */
export const PROBE_TIMEOUT_MS = 1000;
/** What the probe datagram says, for whoever captures it: not WireGuard, nothing to answer. */
const PAYLOAD = Buffer.from('wgp2p wan probe\n');

interface Pending {
  key: string;
  probed: Endpoint;
  cancel: Cancel;
}

export class WanProbe {
  /** Probes in flight by the node's public address: one at a time per address, or replies could not be told apart. */
  private pending = new Map<string, Pending>();
  private byKey = new Map<string, string>();
  private readonly clock: Clock;

  private constructor(
    private readonly socket: Socket,
    private readonly deps: WanProbeDeps,
  ) {
    this.clock = deps.clock ?? realClock;
    socket.on('message', (_msg, rinfo) => this.arrived(rinfo.address, rinfo.port));
    socket.on('error', (err) => deps.log.warn({ err }, 'WAN probe socket error'));
  }

  static async open(deps: WanProbeDeps): Promise<WanProbe> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new WanProbe(socket, deps);
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Whether a probe of the node is under way: its first attempt waits for the answer. */
  probing(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Probes the node whose public address is `seen`'s; false if it cannot be probed now (IPv6, or a probe of that address is under way). */
  probe(key: string, seen: Endpoint): boolean {
    if (seen.family !== 4 || this.byKey.has(key)) return false;
    const address = seen.address.toString();
    if (this.pending.has(address)) return false;
    const from = this.deps.pickPort?.() ?? 20000 + Math.floor(Math.random() * 40000);
    const probed = Endpoint.of(seen.address, from);
    const p: Pending = { key, probed, cancel: () => undefined };
    this.pending.set(address, p);
    this.byKey.set(key, address);
    p.cancel = this.clock.after(PROBE_TIMEOUT_MS, () => this.finish(address, null));
    this.socket.send(PAYLOAD, from, address, (err) => {
      if (this.pending.get(address) !== p) return;
      if (err) {
        this.deps.log.debug({ err, node: key.slice(0, 8) }, 'WAN probe could not be sent');
        return this.finish(address, null);
      }
      // Only now: the probe is on its way, ahead of the command that makes the node answer.
      this.deps.send(key, { type: 'nat-probe', port: this.port, from });
    });
    return true;
  }

  /** The node went away or changed network: a probe under way says nothing any more. */
  cancel(key: string): void {
    const address = this.byKey.get(key);
    if (address === undefined) return;
    this.pending.get(address)?.cancel();
    this.pending.delete(address);
    this.byKey.delete(key);
  }

  private arrived(from: string, port: number): void {
    // Datagrams from anyone reach this socket; only a probed node's public address counts.
    const address = IpAddress.tryParse(from)?.unmapped().toString();
    if (address === undefined || !this.pending.has(address)) return;
    this.finish(address, port);
  }

  private finish(address: string, port: number | null): void {
    const p = this.pending.get(address);
    if (!p) return;
    p.cancel();
    this.pending.delete(address);
    this.byKey.delete(p.key);
    this.deps.result(p.key, port, p.probed);
  }

  close(): void {
    for (const p of this.pending.values()) p.cancel();
    this.pending.clear();
    this.byKey.clear();
    this.socket.close();
  }
}
