import { AddressError, IpAddress, type Family } from './address.js';

/**
 * Where a UDP datagram goes: an IP address of either family and a port. Written the way
 * WireGuard writes it: `192.0.2.1:51820`, `[2001:db8::1]:51820` (RFC 3986 brackets, RFC 5952 text).
 * `HostPort` is the looser form a person types for the hub: it may also be a DNS name.
 */

/**
 * What is wrong with a refused endpoint, for callers that word the refusal for their own context
 * (a wg-quick line, a CLI option) without taking the text apart again themselves.
 */
export type EndpointProblem =
  | { kind: 'empty' }
  | { kind: 'too-long' }
  | { kind: 'no-port' }
  /** Not a number from 1 to 65535 (`port` is the text after the last colon, or after "]:"). */
  | { kind: 'port'; port: string }
  | { kind: 'unbracketed-ipv6' }
  /** "[" without a matching "]:PORT". */
  | { kind: 'bracket-syntax' }
  /** Something other than an IPv6 address inside the brackets. */
  | { kind: 'bracketed-not-ipv6'; host: string }
  /** The host is meant as an IP address (digits and dots, or bracketed) and is not a valid one. */
  | { kind: 'address'; host: string; reason: string }
  /** Neither an IP address nor a DNS name (HostPort), or not an IP address (Endpoint). */
  | { kind: 'host'; host: string };

export class EndpointError extends Error {
  override name = 'EndpointError';

  constructor(
    message: string,
    /** Absent only for errors made outside this module. */
    readonly problem?: EndpointProblem,
  ) {
    super(message);
  }
}

interface Refusal {
  message: string;
  problem: EndpointProblem;
}

const refuse = (message: string, problem: EndpointProblem): Refusal => ({ message, problem });

function parsePort(text: string, whole: string): number | Refusal {
  if (!/^\d{1,5}$/.test(text)) return refuse(`"${whole}" must end in :PORT, a number from 1 to 65535`, { kind: 'port', port: text });
  const port = Number(text);
  if (port < 1 || port > 65535) return refuse(`"${whole}": port ${port} is out of range (1-65535)`, { kind: 'port', port: text });
  return port;
}

/** Splits HOST:PORT or [V6]:PORT, refusing a bare IPv6 address (its colons make the port ambiguous). */
function split(text: string): { host: string; bracketed: boolean; port: number } | Refusal {
  if (typeof text !== 'string' || text.length === 0) return refuse('an endpoint is required (HOST:PORT)', { kind: 'empty' });
  if (text.length > 300) return refuse('the endpoint is too long', { kind: 'too-long' });
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return refuse(`"${text}" must be [IPV6]:PORT`, { kind: 'bracket-syntax' });
    const port = parsePort(text.slice(close + 2), text);
    return typeof port !== 'number' ? port : { host: text.slice(1, close), bracketed: true, port };
  }
  const colon = text.lastIndexOf(':');
  if (colon < 0) return refuse(`"${text}" has no port: write HOST:PORT, like 192.0.2.1:51820`, { kind: 'no-port' });
  if (text.indexOf(':') !== colon) {
    return refuse(`"${text}" looks like an IPv6 address without brackets: write [ADDRESS]:PORT, like [2001:db8::1]:51820`, { kind: 'unbracketed-ipv6' });
  }
  const port = parsePort(text.slice(colon + 1), text);
  return typeof port !== 'number' ? port : { host: text.slice(0, colon), bracketed: false, port };
}

/** The address of an endpoint, or why `host` (from `text`) is not one. */
function addressOf(text: string, host: string, bracketed: boolean): IpAddress | Refusal {
  const address = IpAddress.read(host);
  if (typeof address === 'string') {
    const reason = address;
    const message = `"${text}": ${reason}`;
    if (bracketed) return refuse(message, host.includes(':') ? { kind: 'address', host, reason } : { kind: 'bracketed-not-ipv6', host });
    return refuse(message, /^[\d.]*$/.test(host) ? { kind: 'address', host, reason } : { kind: 'host', host });
  }
  if (address.family === 6 && !bracketed) return refuse(`"${text}" looks like an IPv6 address without brackets: write [ADDRESS]:PORT`, { kind: 'unbracketed-ipv6' });
  if (address.family === 4 && bracketed) return refuse(`"${text}": brackets are for IPv6 addresses only`, { kind: 'bracketed-not-ipv6', host });
  return address;
}

const isRefusal = (x: unknown): x is Refusal => typeof x === 'object' && x !== null && 'problem' in x && 'message' in x;

/** Interned: a device read at 10,000 peers parses the same few thousand strings every poll. */
const cache = new Map<string, Endpoint>();
const CACHE_MAX = 50_000;

export class Endpoint {
  private readonly text: string;

  private constructor(
    readonly address: IpAddress,
    readonly port: number,
  ) {
    this.text = address.family === 6 ? `[${address.toString()}]:${port}` : `${address.toString()}:${port}`;
  }

  static of(address: IpAddress, port: number): Endpoint {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new EndpointError(`port ${port} is out of range (1-65535)`);
    return new Endpoint(address, port);
  }

  /** Parses `192.0.2.1:51820` or `[2001:db8::1]:51820`, or throws an EndpointError that names the fix. */
  static parse(text: string): Endpoint {
    const hit = cache.get(text);
    if (hit) return hit;
    const r = Endpoint.check(text);
    if (isRefusal(r)) throw new EndpointError(r.message, r.problem);
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(text, r);
    return r;
  }

  static tryParse(text: string | undefined | null): Endpoint | undefined {
    if (text === undefined || text === null) return undefined;
    const hit = cache.get(text);
    if (hit) return hit;
    return isRefusal(Endpoint.check(text)) ? undefined : Endpoint.parse(text);
  }

  /** The endpoint, or why `text` is not one (no Error built: see IpAddress.read). */
  static read(text: string): Endpoint | string {
    const r = Endpoint.tryParse(text);
    return r ?? (Endpoint.problem(text) as string);
  }

  /** Why `text` is not an endpoint, or null if it is one. */
  static problem(text: string): string | null {
    const r = Endpoint.check(text);
    return isRefusal(r) ? r.message : null;
  }

  private static check(text: string): Endpoint | Refusal {
    const s = split(text);
    if (isRefusal(s)) return s;
    const address = addressOf(text, s.host, s.bracketed);
    return isRefusal(address) ? address : new Endpoint(address, s.port);
  }

  get family(): Family {
    return this.address.family;
  }

  withPort(port: number): Endpoint {
    return Endpoint.of(this.address, port);
  }

  equals(o: Endpoint | undefined | null): boolean {
    return o !== undefined && o !== null && o.text === this.text;
  }

  toString(): string {
    return this.text;
  }

  toJSON(): string {
    return this.text;
  }
}

/** What a person gives as the hub's address: an endpoint, or a DNS name with a port. */
export class HostPort {
  private constructor(
    /** The IP address, when the host is one; else undefined and `host` is a DNS name. */
    readonly address: IpAddress | undefined,
    readonly host: string,
    readonly port: number,
  ) {}

  static parse(text: string): HostPort {
    const s = split(text);
    if (isRefusal(s)) throw new EndpointError(s.message, s.problem);
    if (s.bracketed || /^[\d.]+$/.test(s.host)) {
      const address = addressOf(text, s.host, s.bracketed);
      if (isRefusal(address)) throw new EndpointError(address.message, address.problem);
      return new HostPort(address, address.toString(), s.port);
    }
    // RFC 1123 host names: labels of letters, digits and hyphens, not starting or ending with one;
    // one trailing dot makes the name absolute ("vpn.example.org."), which resolvers accept.
    const label = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
    const name = s.host.endsWith('.') ? s.host.slice(0, -1) : s.host;
    if (name.length > 253 || !name.split('.').every((l) => label.test(l))) {
      throw new EndpointError(`"${text}": "${s.host}" is neither an IP address nor a DNS name (letters, digits, "-" and dots)`, { kind: 'host', host: s.host });
    }
    return new HostPort(undefined, s.host, s.port);
  }

  /** The endpoint, when the host is an address. */
  get endpoint(): Endpoint | undefined {
    return this.address && Endpoint.of(this.address, this.port);
  }

  toString(): string {
    return this.address?.family === 6 ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }
}
