import { AddressError, IpAddress, type Family } from './address.js';

/**
 * Where a UDP datagram goes: an IP address of either family and a port. Written the way
 * WireGuard writes it: `192.0.2.1:51820`, `[2001:db8::1]:51820` (RFC 3986 brackets, RFC 5952 text).
 * `HostPort` is the looser form a person types for the hub: it may also be a DNS name.
 */

export class EndpointError extends Error {
  override name = 'EndpointError';
}

function parsePort(text: string, whole: string): number | string {
  if (!/^\d{1,5}$/.test(text)) return `"${whole}" must end in :PORT, a number from 1 to 65535`;
  const port = Number(text);
  if (port < 1 || port > 65535) return `"${whole}": port ${port} is out of range (1-65535)`;
  return port;
}

/** Splits HOST:PORT or [V6]:PORT, refusing a bare IPv6 address (its colons make the port ambiguous). */
function split(text: string): { host: string; bracketed: boolean; port: number } | string {
  if (typeof text !== 'string' || text.length === 0) return 'an endpoint is required (HOST:PORT)';
  if (text.length > 300) return 'the endpoint is too long';
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return `"${text}" must be [IPV6]:PORT`;
    const port = parsePort(text.slice(close + 2), text);
    return typeof port === 'string' ? port : { host: text.slice(1, close), bracketed: true, port };
  }
  const colon = text.lastIndexOf(':');
  if (colon < 0) return `"${text}" has no port: write HOST:PORT, like 192.0.2.1:51820`;
  if (text.indexOf(':') !== colon) return `"${text}" looks like an IPv6 address without brackets: write [ADDRESS]:PORT, like [2001:db8::1]:51820`;
  const port = parsePort(text.slice(colon + 1), text);
  return typeof port === 'string' ? port : { host: text.slice(0, colon), bracketed: false, port };
}

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
    if (typeof r === 'string') throw new EndpointError(r);
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(text, r);
    return r;
  }

  static tryParse(text: string | undefined | null): Endpoint | undefined {
    if (text === undefined || text === null) return undefined;
    const hit = cache.get(text);
    if (hit) return hit;
    const r = Endpoint.check(text);
    return typeof r === 'string' ? undefined : Endpoint.parse(text);
  }

  /** Why `text` is not an endpoint, or null if it is one. */
  static problem(text: string): string | null {
    const r = Endpoint.check(text);
    return typeof r === 'string' ? r : null;
  }

  private static check(text: string): Endpoint | string {
    const s = split(text);
    if (typeof s === 'string') return s;
    let address: IpAddress;
    try {
      address = IpAddress.parse(s.host);
    } catch (err) {
      return `"${text}": ${(err as AddressError).message}`;
    }
    if (address.family === 6 && !s.bracketed) return `"${text}" looks like an IPv6 address without brackets: write [ADDRESS]:PORT`;
    if (address.family === 4 && s.bracketed) return `"${text}": brackets are for IPv6 addresses only`;
    return new Endpoint(address, s.port);
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
    if (typeof s === 'string') throw new EndpointError(s);
    if (s.bracketed || /^[\d.]+$/.test(s.host)) {
      const e = Endpoint.parse(text);
      return new HostPort(e.address, e.address.toString(), e.port);
    }
    // RFC 1123 host names: labels of letters, digits and hyphens, not starting or ending with one.
    const label = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
    if (s.host.length > 253 || !s.host.split('.').every((l) => label.test(l))) {
      throw new EndpointError(`"${text}": "${s.host}" is neither an IP address nor a DNS name (letters, digits, "-" and dots)`);
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
