import { AddressError, IpAddress, type Family } from './address.js';

/**
 * Subnets and interface addresses of either family. `Cidr` is a network (host bits clear, as in
 * a route or AllowedIPs); `Prefixed` is one address with its network's prefix (as in an
 * interface's Address = line).
 */

const maxBits = (f: Family) => (f === 4 ? 32 : 128);

function splitPrefix(text: string): { address: IpAddress; prefix: number } | string {
  if (typeof text !== 'string') return 'a subnet is required';
  const slash = text.indexOf('/');
  if (slash < 0) return `"${text}" has no prefix length (like /24)`;
  const addr = IpAddress.read(text.slice(0, slash));
  if (typeof addr === 'string') return addr;
  const len = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(len) || Number(len) > maxBits(addr.family)) return `"${text}": the prefix length must be 0-${maxBits(addr.family)}`;
  return { address: addr, prefix: Number(len) };
}

function mask(family: Family, prefix: number): bigint {
  const bits = BigInt(maxBits(family));
  return prefix === 0 ? 0n : ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(prefix))) - 1n);
}

export class Cidr {
  private constructor(
    readonly network: IpAddress,
    readonly prefix: number,
  ) {}

  /** A subnet whose host bits are clear ("10.0.0.1/24" is an address with a prefix, not a subnet: use Prefixed). */
  static parse(text: string): Cidr {
    const r = Cidr.read(text);
    if (typeof r === 'string') throw new AddressError(r);
    return r;
  }

  static tryParse(text: string): Cidr | undefined {
    const r = Cidr.read(text);
    return typeof r === 'string' ? undefined : r;
  }

  /** The subnet, or why `text` is not one (no Error built: see IpAddress.read). */
  static read(text: string): Cidr | string {
    const r = splitPrefix(text);
    if (typeof r === 'string') return r;
    const c = new Cidr(IpAddress.fromValue(r.address.family, r.address.value & mask(r.address.family, r.prefix)), r.prefix);
    if (!c.network.equals(r.address)) return `"${text}" has host bits set; the subnet is ${c.toString()}`;
    return c;
  }

  /** The network `address` is in, at `prefix`. */
  static of(address: IpAddress, prefix: number): Cidr {
    if (prefix < 0 || prefix > maxBits(address.family)) throw new AddressError(`prefix /${prefix} is out of range for IPv${address.family}`);
    return new Cidr(IpAddress.fromValue(address.family, address.value & mask(address.family, prefix)), prefix);
  }

  /** The one address itself, as a host route (/32 or /128). */
  static host(address: IpAddress): Cidr {
    return new Cidr(address, maxBits(address.family));
  }

  get family(): Family {
    return this.network.family;
  }

  /** Number of addresses, as a bigint (an IPv6 /64 has 2^64). */
  get size(): bigint {
    return 1n << BigInt(maxBits(this.family) - this.prefix);
  }

  contains(a: IpAddress): boolean {
    return a.family === this.family && (a.value & mask(this.family, this.prefix)) === this.network.value;
  }

  overlaps(o: Cidr): boolean {
    return o.family === this.family && (this.contains(o.network) || o.contains(this.network));
  }

  /** Whether `o` lies wholly inside this subnet. */
  covers(o: Cidr): boolean {
    return o.family === this.family && o.prefix >= this.prefix && this.contains(o.network);
  }

  /** The n-th address (n = 0 is the network address itself). */
  nth(n: bigint | number): IpAddress {
    const k = BigInt(n);
    if (k < 0n || k >= this.size) throw new AddressError(`${this.toString()} has no address number ${k}`);
    return this.network.plus(k);
  }

  /** Position of `a` inside this subnet (its host number), or undefined if it is outside. */
  offsetOf(a: IpAddress): bigint | undefined {
    return this.contains(a) ? a.value - this.network.value : undefined;
  }

  /**
   * An address a host may use: not the IPv4 network or broadcast address (below /31), not the
   * IPv6 subnet-router anycast address (host part zero, RFC 4291 2.6.1).
   */
  isUsableHost(a: IpAddress): boolean {
    if (!this.contains(a)) return false;
    if (this.family === 4) return this.prefix >= 31 || (a.value !== this.network.value && a.value !== this.network.value + this.size - 1n);
    return this.prefix >= 127 || a.value !== this.network.value;
  }

  /** The block of the same size right after this one (10.99.0.0/24 -> 10.99.1.0/24). */
  next(): Cidr {
    return Cidr.of(this.network.plus(this.size), this.prefix);
  }

  equals(o: Cidr | undefined): boolean {
    return o !== undefined && o.prefix === this.prefix && o.network.equals(this.network);
  }

  toString(): string {
    return `${this.network.toString()}/${this.prefix}`;
  }

  toJSON(): string {
    return this.toString();
  }
}

/** One interface address with its network's prefix, like 10.99.0.3/24 or fd00:99::3/64. */
export class Prefixed {
  private constructor(
    readonly address: IpAddress,
    readonly prefix: number,
  ) {}

  static parse(text: string): Prefixed {
    const r = Prefixed.read(text);
    if (typeof r === 'string') throw new AddressError(r);
    return r;
  }

  static tryParse(text: string): Prefixed | undefined {
    const r = Prefixed.read(text);
    return typeof r === 'string' ? undefined : r;
  }

  /** The address and prefix, or why `text` is not one (no Error built: see IpAddress.read). */
  static read(text: string): Prefixed | string {
    const r = splitPrefix(text);
    return typeof r === 'string' ? r : new Prefixed(r.address, r.prefix);
  }

  static of(address: IpAddress, prefix: number): Prefixed {
    Cidr.of(address, prefix); // range check
    return new Prefixed(address, prefix);
  }

  get family(): Family {
    return this.address.family;
  }

  get subnet(): Cidr {
    return Cidr.of(this.address, this.prefix);
  }

  toString(): string {
    return `${this.address.toString()}/${this.prefix}`;
  }

  toJSON(): string {
    return this.toString();
  }
}
