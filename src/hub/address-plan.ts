import type { IpAddress } from '../core/net/address.js';
import { Cidr } from '../core/net/cidr.js';
import type { HubSettings, NodeKind, Placement } from './store/model.js';

/**
 * Where each node sits in the hub's networks. A node is a host number h: its tunnel address is
 * the tunnel network + h, a client's proxied address and a joining agent's one-time tunnel
 * address are the proxied subnet + h, and a client's listen port is a function of h. One number,
 * so the store can allocate with an index instead of scanning every node (and so an IPv6 ULA
 * prefix + h can follow).
 */

export function tunnelSubnet(hub: HubSettings): Cidr {
  return hub.address.subnet;
}

/** Host numbers 0 (the network) and the IPv4 broadcast address are never nodes; 1 is kept for the hub (the usual .1), wherever the hub really is. */
export const FIRST_HOST = 2;

export function hostRange(hub: HubSettings): { first: number; last: number; reserved: number[] } {
  const subnet = tunnelSubnet(hub);
  const last = Number(subnet.size) - (subnet.family === 4 ? 2 : 1);
  return { first: FIRST_HOST, last, reserved: [hubHostNumber(hub)] };
}

export function hubHostNumber(hub: HubSettings): number {
  return Number(tunnelSubnet(hub).offsetOf(hub.address.address) ?? 0n);
}

/** The host number of a tunnel address, or undefined when it is outside the tunnel network. */
export function hostNumberOf(hub: HubSettings, address: IpAddress): number | undefined {
  const off = tunnelSubnet(hub).offsetOf(address);
  return off === undefined ? undefined : Number(off);
}

export function nodeAddress(hub: HubSettings, hostNumber: number): IpAddress {
  return tunnelSubnet(hub).nth(hostNumber);
}

/** A client's proxied address, and the address of an agent's one-time join tunnel: the same host number in the proxied subnet. */
export function proxiedAddress(hub: HubSettings, hostNumber: number): IpAddress | undefined {
  return BigInt(hostNumber) < hub.proxiedSubnet.size ? hub.proxiedSubnet.nth(hostNumber) : undefined;
}

/** The host number a join tunnel's address stands for, or undefined when it is not in the proxied subnet. */
export function hostNumberOfProxied(hub: HubSettings, address: IpAddress): number | undefined {
  const off = hub.proxiedSubnet.offsetOf(address);
  return off === undefined ? undefined : Number(off);
}

/** Agents listen on WireGuard's usual port; behind one NAT, the NAT tells them apart. */
export const AGENT_LISTEN_PORT = 51820;

const FIRST_BASE = 41000;
const FIRST_COUNT = 65534 - FIRST_BASE; // host numbers 1..24534 -> ports 41001..65534
const SECOND_TOP = 40999;
const SECOND_BOTTOM = 1024;
const SECOND_COUNT = SECOND_TOP - SECOND_BOTTOM + 1; // 39,976 ports
/** Host numbers with a port of their own: every host of a /17 (32,766), nearly all of a /16. */
export const DISTINCT_CLIENT_PORTS = FIRST_COUNT + SECOND_COUNT;

/**
 * A client's ListenPort. Clients behind one NAT need distinct ports (seed 000: the NAT keeps a
 * port only if it is free, and the hub learns a NAT's behaviour from whether it kept it). The
 * rule: 41000 + host number while that stays at or below 65534 (host numbers 1-24534; the
 * first release's rule, so existing configs keep their port), then down from 40999 (host
 * numbers 24535-64510 get 40999 … 1024; never a privileged port, which some WireGuard apps
 * cannot bind). Past 64510 host numbers (only in networks larger than a /16) the sequence starts
 * over: ports repeat, but stay valid.
 */
export function clientListenPort(hostNumber: number): number {
  if (!Number.isInteger(hostNumber) || hostNumber < 1) throw new RangeError(`host number ${hostNumber} must be a positive integer`);
  const k = (hostNumber - 1) % DISTINCT_CLIENT_PORTS;
  return k < FIRST_COUNT ? FIRST_BASE + 1 + k : SECOND_TOP - (k - FIRST_COUNT);
}

export class PlacementError extends Error {
  override name = 'PlacementError';
}

/** Everything about a node of `kind` that follows from its host number. */
export function placement(hub: HubSettings, kind: NodeKind, hostNumber: number): Placement {
  let proxied: IpAddress | null = null;
  if (kind === 'client') {
    const p = proxiedAddress(hub, hostNumber);
    if (!p) throw new PlacementError(`the proxied subnet ${hub.proxiedSubnet} has no address for host number ${hostNumber} (${nodeAddress(hub, hostNumber)}); it must be as large as the tunnel network ${tunnelSubnet(hub)}`);
    proxied = p;
  }
  return {
    address: nodeAddress(hub, hostNumber),
    proxiedAddress: proxied,
    // A relay's tunnel only carries its control connection: any port will do.
    listenPort: kind === 'agent' ? AGENT_LISTEN_PORT : kind === 'client' ? clientListenPort(hostNumber) : null,
  };
}

// ---- IPv6 inside the tunnel -------------------------------------------------------------------

/** A node's IPv6 tunnel address: the tunnel's ULA /64 + its host number, so it needs no allocation (and existing nodes got theirs with the prefix). */
export function nodeAddress6(hub: HubSettings, hostNumber: number): IpAddress {
  return hub.address6.subnet.nth(hostNumber);
}

/** A client's proxied IPv6 address (and a joining agent's one-time tunnel's): the proxied /64 + the host number. */
export function proxiedAddress6(hub: HubSettings, hostNumber: number): IpAddress {
  return hub.proxiedSubnet6.nth(hostNumber);
}

/**
 * A tunnel's IPv6 prefix as RFC 4193 3.2 makes one: fd00::/8 and a random 40-bit global ID, so
 * two hubs' tunnels (or a tunnel and a LAN's ULA) practically never collide. Subnet 0 is the
 * tunnel, subnet 1 the proxied clients'.
 */
export function randomUlaPrefix(random: (n: number) => Buffer): { tunnel: Cidr; proxied: Cidr } {
  const id = random(5);
  const hex = (i: number) => id.readUInt16BE(i).toString(16);
  const tunnel = Cidr.parse(`fd${id[0].toString(16).padStart(2, '0')}:${hex(1)}:${hex(3)}::/64`);
  return { tunnel, proxied: tunnel.next() };
}

/** Why `subnet` cannot be the tunnel's IPv6 network (`--address6`), or null: a /64 of unique-local space (RFC 4193). */
export function address6Problem(subnet: Cidr): string | null {
  if (subnet.family !== 6) return `${subnet} is not an IPv6 subnet`;
  if (subnet.prefix !== 64) return `${subnet} is a /${subnet.prefix}; the tunnel's IPv6 network is a /64 (one per site, as RFC 4193 hands them out)`;
  if (!Cidr.parse('fd00::/8').covers(subnet)) return `${subnet} is not in fd00::/8; use a unique-local prefix like ${randomUlaPrefix((n) => Buffer.alloc(n, 0x5a)).tunnel}`;
  return null;
}
