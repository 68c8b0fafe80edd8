import ipaddr from 'ipaddr.js';

/**
 * An IP address of either family as a value: parsed once, compared and formatted canonically
 * (dotted quad; RFC 5952 for IPv6, which is also how wireguard-go and wg(8) print endpoints).
 * Parsing is strict where ipaddr.js is lenient: IPv4 must be four decimal parts ("10.1" and
 * "0x7f.0.0.1" are refused), and an IPv6 zone index ("fe80::1%eth0") is refused, because a zone
 * names an interface of one machine and means nothing to any other.
 */

export type Family = 4 | 6;

export class AddressError extends Error {
  override name = 'AddressError';
}

/** What an address is for, from the IANA special-purpose registries (RFC 6890 and successors). */
export type Scope =
  | 'public'
  | 'private' // RFC 1918
  | 'shared' // RFC 6598, carrier-grade NAT
  | 'loopback'
  | 'link-local'
  | 'unique-local' // RFC 4193, fc00::/7
  | 'unspecified'
  | 'multicast'
  | 'reserved';

/** Documentation ranges (RFC 5737, RFC 3849) count as public: the lab's internet is built of them. */
const DOCUMENTATION = [ipaddr.parseCIDR('192.0.2.0/24'), ipaddr.parseCIDR('198.51.100.0/24'), ipaddr.parseCIDR('203.0.113.0/24'), ipaddr.parseCIDR('2001:db8::/32')];
/** RFC 2544 benchmarking space: the lab's nested routers use it as a stand-in for an ISP's address. */
const BENCHMARKING = ipaddr.parseCIDR('198.18.0.0/15');

const SCOPES: Record<string, Scope> = {
  unicast: 'public',
  private: 'private',
  carrierGradeNat: 'shared',
  loopback: 'loopback',
  linkLocal: 'link-local',
  uniqueLocal: 'unique-local',
  unspecified: 'unspecified',
  multicast: 'multicast',
  broadcast: 'reserved',
};

const V4_DECIMAL = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export class IpAddress {
  private constructor(
    readonly family: Family,
    /** The address as an unsigned integer (32 or 128 bits). */
    readonly value: bigint,
    private readonly text: string,
  ) {}

  /** Parses `text` or throws an AddressError saying what is wrong with it. */
  static parse(text: string): IpAddress {
    const r = IpAddress.read(text);
    if (typeof r === 'string') throw new AddressError(r);
    return r;
  }

  static tryParse(text: string): IpAddress | undefined {
    const r = IpAddress.read(text);
    return typeof r === 'string' ? undefined : r;
  }

  static isValid(text: string): boolean {
    return typeof IpAddress.read(text) !== 'string';
  }

  static fromValue(family: Family, value: bigint): IpAddress {
    const bits = family === 4 ? 32 : 128;
    if (value < 0n || value >= 1n << BigInt(bits)) throw new AddressError(`${value} is outside the IPv${family} address space`);
    const bytes: number[] = [];
    for (let i = bits / 8 - 1; i >= 0; i--) bytes.push(Number((value >> BigInt(i * 8)) & 0xffn));
    return IpAddress.fromParsed(ipaddr.fromByteArray(bytes));
  }

  /**
   * The address, or why `text` is not one. Validators use this rather than parse(): building an
   * Error (its stack) costs more than the parse itself, and a hostile list of thousands of bad
   * entries must not cost thousands of them.
   */
  static read(text: string): IpAddress | string {
    if (typeof text !== 'string' || text.length === 0) return 'an address is required';
    if (text.length > 45) return `"${text.slice(0, 45)}…" is too long to be an IP address`;
    if (text.includes('%')) return `"${text}" has a zone index (%…): zones name an interface of one machine; give the address without it`;
    if (text.includes(':')) {
      if (text.startsWith('[')) return `"${text}" is bracketed: brackets go around an IPv6 address only when a port follows`;
      if (!ipaddr.IPv6.isValid(text)) return `"${text}" is not an IPv6 address`;
      // ipaddr.js reads an embedded IPv4 part ("::ffff:0x7f.0.0.1") as leniently as a bare one.
      const dot = text.includes('.') ? text.slice(text.lastIndexOf(':') + 1) : undefined;
      if (dot !== undefined && !V4_DECIMAL.test(dot)) return `"${text}": its IPv4 part "${dot}" must be four decimal numbers 0-255`;
      return IpAddress.fromParsed(ipaddr.IPv6.parse(text));
    }
    if (!V4_DECIMAL.test(text)) return `"${text}" is not an IPv4 address (four decimal numbers 0-255, like 192.0.2.1)`;
    return IpAddress.fromParsed(ipaddr.IPv4.parse(text));
  }

  private static fromParsed(a: ipaddr.IPv4 | ipaddr.IPv6): IpAddress {
    let value = 0n;
    for (const b of a.toByteArray()) value = (value << 8n) | BigInt(b);
    if (a.kind() === 'ipv6') {
      const v6 = a as ipaddr.IPv6;
      // RFC 5952 section 5: an IPv4-mapped address keeps its dotted quad, as Node's sockets, Go
      // (wireguard-go) and inet_ntop print it; "::ffff:c000:201" would never match their text.
      if (v6.isIPv4MappedAddress()) return new IpAddress(6, value, `::ffff:${v6.toIPv4Address().toString()}`);
      return new IpAddress(6, value, v6.toRFC5952String());
    }
    return new IpAddress(4, value, a.toString());
  }

  private parsed(): ipaddr.IPv4 | ipaddr.IPv6 {
    return ipaddr.parse(this.text);
  }

  /** An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket reports for IPv4) as the IPv4 address it carries. */
  unmapped(): IpAddress {
    if (this.family === 6 && this.value >> 32n === 0xffffn) return IpAddress.fromValue(4, this.value & 0xffffffffn);
    return this;
  }

  scope(): Scope {
    const a = this.parsed();
    if (DOCUMENTATION.some(([net, bits]) => net.kind() === a.kind() && a.match(net, bits))) return 'public';
    if (a.kind() === 'ipv4' && a.match(BENCHMARKING)) return 'public';
    return SCOPES[a.range()] ?? 'reserved';
  }

  /** Reachable across the internet: not private, shared, loopback, link-local, unique-local or special. */
  isPublic(): boolean {
    return this.scope() === 'public';
  }

  plus(n: bigint | number): IpAddress {
    return IpAddress.fromValue(this.family, this.value + BigInt(n));
  }

  equals(other: IpAddress | undefined): boolean {
    return other !== undefined && other.family === this.family && other.value === this.value;
  }

  toString(): string {
    return this.text;
  }

  toJSON(): string {
    return this.text;
  }
}

/**
 * Why `a` cannot be an endpoint that other machines are told to send to (a hub's, an agent's
 * fixed one), or null. Loopback, link-local (RFC 4291, zoned to one link), unique-local (RFC 4193,
 * never routed), unspecified, multicast and reserved addresses are refused. Private and shared
 * IPv4 space is allowed: a hub on a company network or behind a carrier's NAT serves the nodes
 * that share it.
 */
export function publicEndpointProblem(a: IpAddress): string | null {
  switch (a.unmapped().scope()) {
    case 'public':
    case 'private':
    case 'shared':
      return null;
    case 'loopback':
      return 'a loopback address (only this machine reaches it)';
    case 'link-local':
      return 'a link-local address (reachable on one link only, and it needs a zone to mean anything)';
    case 'unique-local':
      return 'a unique-local address (fc00::/7 is never routed on the internet)';
    case 'unspecified':
      return 'the unspecified address';
    case 'multicast':
      return 'a multicast address';
    case 'reserved':
      return 'a reserved address';
  }
}
