/** IPv4 addresses and CIDR subnets as plain numbers: enough for address plans, no dependency. */

export interface Cidr {
  /** Network address (host bits cleared). */
  network: number;
  prefix: number;
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function parseIPv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function isIPv4(text: string): boolean {
  return parseIPv4(text) !== undefined;
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function parseCidr(text: string): Cidr | undefined {
  const [addr, len, extra] = text.split('/');
  if (extra !== undefined || len === undefined || !/^\d{1,2}$/.test(len)) return undefined;
  const prefix = Number(len);
  const ip = parseIPv4(addr);
  if (ip === undefined || prefix > 32) return undefined;
  return { network: (ip & maskOf(prefix)) >>> 0, prefix };
}

/** Like parseCidr, but also rejects host bits set ("10.0.0.1/24" is an address, not a subnet). */
export function parseSubnet(text: string): Cidr | undefined {
  const c = parseCidr(text);
  if (!c) return undefined;
  return parseIPv4(text.split('/')[0]) === c.network ? c : undefined;
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.network)}/${c.prefix}`;
}

export function size(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function contains(c: Cidr, ip: number): boolean {
  return ((ip & maskOf(c.prefix)) >>> 0) === c.network;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return contains(a, b.network) || contains(b, a.network);
}

/** Usable host address (not network, not broadcast) for prefixes shorter than /31. */
export function isUsableHost(c: Cidr, ip: number): boolean {
  if (!contains(c, ip)) return false;
  if (c.prefix >= 31) return true;
  return ip !== c.network && ip !== c.network + size(c) - 1;
}

/** The n-th address of a subnet (n = 1 is the first host address). */
export function nthHost(c: Cidr, n: number): number {
  return c.network + n;
}
