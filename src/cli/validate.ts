import { InvalidArgumentError } from 'commander';
import { IpAddress, publicEndpointProblem, type Scope } from '../core/net/address.js';
import { Cidr, Prefixed } from '../core/net/cidr.js';
import { EndpointError, HostPort } from '../core/net/endpoint.js';
import { relayAddressesProblem } from '../core/relay-protocol.js';
import { address6Problem } from '../hub/address-plan.js';

/**
 * Commander argument parsers: a bad value fails before anything runs, naming the option and the
 * fix (commander prefixes the message with the option). They return the value as typed, checked:
 * the store and the configs keep the user's text.
 */

const reasonOf = (err: unknown) => (err as Error).message;

/** What is wrong with an endpoint, short: the message around it already says what is wanted. */
function endpointReason(err: unknown): string {
  const p = err instanceof EndpointError ? err.problem : undefined;
  switch (p?.kind) {
    case 'empty':
      return 'it is empty';
    case 'too-long':
      return 'it is too long';
    case 'no-port':
      return 'it has no port';
    case 'port':
      return `port "${p.port}" is not a number from 1 to 65535`;
    case 'unbracketed-ipv6':
      return 'an IPv6 address needs brackets before the port';
    case 'bracket-syntax':
      return '"[" must be followed by an IPv6 address and "]:PORT"';
    case 'bracketed-not-ipv6':
      return `brackets are for IPv6 addresses; write ${p.host}:PORT`;
    case 'address':
      return p.reason;
    case 'host':
      return `"${p.host}" is neither an IP address nor a DNS name`;
    default:
      return reasonOf(err);
  }
}

/** Where nodes reach something: an address of either family, or a DNS name (a DDNS name for a home server). */
export function endpointArg(v: string): string {
  try {
    HostPort.parse(v);
  } catch (err) {
    throw new InvalidArgumentError(`"${v}" must be HOST:PORT, e.g. 203.0.113.2:51820, [2001:db8::2]:51820 or vpn.example.org:51820 (${endpointReason(err)})`);
  }
  return v;
}

/** A whole number of milliseconds from 1 to 60,000 ("abc" used to become NaN, and a poll every 1 ms). */
export function millisecondsArg(v: string): number {
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 60_000) throw new InvalidArgumentError(`"${v}" must be a number of milliseconds from 1 to 60000`);
  return Number(v);
}

export function familyArg(v: string): 4 | 6 {
  if (v !== '4' && v !== '6') throw new InvalidArgumentError(`"${v}" must be 4 or 6 (the address family)`);
  return v === '4' ? 4 : 6;
}

/** An endpoint the hub tells nodes to send to: HOST:PORT whose address (if it is one) other machines can reach. */
export function hubEndpointArg(v: string): string {
  endpointArg(v);
  const address = HostPort.parse(v).address;
  const problem = address && publicEndpointProblem(address);
  if (problem) throw new InvalidArgumentError(`"${v}" is ${problem}; give the address nodes on the internet reach the hub at, or a DNS name`);
  return v;
}

/** The tunnel's IPv6 network: a /64 of unique-local space. */
export function address6Arg(v: string): string {
  const c = Cidr.tryParse(v);
  if (!c) throw new InvalidArgumentError(`"${v}" must be a /64 subnet of unique-local space, like fd3c:1a2b:3c4d::/64 (host bits clear)`);
  const problem = address6Problem(c);
  if (problem) throw new InvalidArgumentError(`--address6 ${problem}`);
  return v;
}

/**
 * The hub's tunnel address. IPv4 only: the hub allocates node addresses with IPv4 maths today, so
 * an IPv6 tunnel would be accepted here and fail later, far from the option that caused it.
 */
export function addressWithPrefixArg(v: string): string {
  const wanted = `"${v}" must be an IPv4 address with a prefix of /8 to /30, e.g. 10.99.0.1/24`;
  let p: Prefixed;
  try {
    p = Prefixed.parse(v);
  } catch (err) {
    throw new InvalidArgumentError(`${wanted} (${reasonOf(err)})`);
  }
  if (p.family !== 4) throw new InvalidArgumentError(`${wanted} (the tunnel network is IPv4 for now)`);
  if (p.prefix < 8 || p.prefix > 30) throw new InvalidArgumentError(`${wanted} (it has /${p.prefix})`);
  if (!p.subnet.isUsableHost(p.address)) throw new InvalidArgumentError(`${wanted} (${p.address.toString()} is the network or broadcast address of ${p.subnet.toString()}; pick a host address in it)`);
  return v;
}

/** A subnet (proxied client pool, routes behind a node). IPv4 only, for the same reason as the tunnel address. */
export function subnetArg(v: string): string {
  const wanted = `"${v}" must be an IPv4 subnet with host bits clear, e.g. 10.98.0.0/24`;
  let c: Cidr;
  try {
    c = Cidr.parse(v);
  } catch (err) {
    throw new InvalidArgumentError(`${wanted} (${reasonOf(err)})`);
  }
  if (c.family !== 4) throw new InvalidArgumentError(`${wanted} (IPv6 subnets are not supported here yet)`);
  return v;
}

export function portArg(v: string): number {
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new InvalidArgumentError(`"${v}" must be a port from 1 to 65535`);
  return Number(v);
}

export function secondsArg(v: string): number {
  if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new InvalidArgumentError(`"${v}" must be a number of seconds (0-65535)`);
  return Number(v);
}

/** Subnets behind a node, of either family, host bits clear. */
export function routesArg(v: string): string[] {
  return v.split(',').map((text) => {
    const r = text.trim();
    try {
      Cidr.parse(r);
    } catch (err) {
      throw new InvalidArgumentError(`route "${r}" must be a subnet with host bits clear, e.g. 192.168.1.0/24 or 2001:db8:1::/64 (${reasonOf(err)})`);
    }
    return r;
  });
}

export function durationArg(v: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(v);
  if (!m || Number(m[1]) === 0) throw new InvalidArgumentError(`"${v}" must be a duration like 90s, 30m or 2h`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}

/** Why an address of this scope cannot be where nodes on the internet send to. */
const NOT_PUBLIC: Record<Exclude<Scope, 'public'>, string> = {
  loopback: 'a loopback address: only this machine reaches it',
  'link-local': 'a link-local address: it is only reachable on one link and never routed',
  'unique-local': 'a unique-local address (fc00::/7): it is not routed on the internet',
  private: 'a private address (RFC 1918): nodes behind other NATs cannot reach it',
  shared: 'a carrier-grade NAT address (100.64.0.0/10): nodes outside that carrier cannot reach it',
  unspecified: 'the unspecified address: the relay binds one address and tells the hub that nodes send to it',
  multicast: 'a multicast address',
  reserved: 'a reserved or special-purpose address',
};

/**
 * A relay's public address, of either family: nodes send to it and the relay's ports bind to it.
 * Refuses what nodes elsewhere could never reach, naming the fix.
 */
export function publicAddressArg(v: string): IpAddress {
  let a: IpAddress;
  try {
    a = IpAddress.parse(v);
  } catch (err) {
    throw new InvalidArgumentError(`"${v}" must be this machine's public IPv4 or IPv6 address (${reasonOf(err)})`);
  }
  if (a.unmapped() !== a) throw new InvalidArgumentError(`"${v}" is an IPv4-mapped IPv6 address; give the IPv4 address itself (${a.unmapped().toString()})`);
  const scope = a.scope();
  if (scope !== 'public') {
    throw new InvalidArgumentError(`"${v}" is ${NOT_PUBLIC[scope]}; give this machine's public IPv4 or IPv6 address, the one nodes on the internet reach it at (see "ip addr show")`);
  }
  return a;
}

/** MIN-MAX, at least two ports: each allocation takes one per side. */
/** A relay machine's `--address`, repeatable: at most one of each family (relay run, service relay). */
export function collectRelayMachineAddresses(v: string, all: IpAddress[] | undefined): IpAddress[] {
  // No default list: requiredOption would count an empty default as given.
  const list = [...(all ?? []), publicAddressArg(v)];
  const why = relayAddressesProblem(list);
  if (why) throw new InvalidArgumentError(why);
  return list;
}

export function portRangeArg(v: string): [number, number] {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(v);
  const [min, max] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (!m || min < 1 || max > 65535 || min + 1 > max) throw new InvalidArgumentError(`"${v}" must be MIN-MAX with 1 <= MIN < MAX <= 65535 (each allocation takes two ports)`);
  return [min, max];
}
