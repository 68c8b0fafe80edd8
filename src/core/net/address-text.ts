/**
 * Address text to numbers and back, for both families, in one linear pass without regexes or
 * allocation beyond the result.
 *
 * Why not ipaddr.js here: it costs 8-12 µs per IPv6 address on this project's 2-core VMs (a
 * validity regex, then a second parse, then byte arrays), so a 100 KB wg-quick file of IPv6
 * prefixes took 70 ms of CPU, seven times the hardening issue's 10 ms bound for hostile input.
 * ipaddr.js still answers the registry questions (scope, ranges), which are not on a parse path.
 *
 * The grammar is RFC 4291 section 2.2 (with RFC 5952's output form) and, for IPv4, four decimal
 * parts 0-255 without leading zeros, so "010.0.0.1" (octal to inet_aton) and "10.1" are refused.
 */

/** The 32-bit value of a dotted quad, or -1 when `text` (from `start` to `end`) is not one. */
export function readIpv4(text: string, start = 0, end = text.length): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i <= end; i++) {
    const c = i === end ? 46 /* '.' ends the last part */ : text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || parts === 4) return -1;
      value = value * 256 + part;
      parts++;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1; // a leading zero
      part = part * 10 + (c - 48);
      if (part > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  return parts === 4 ? value : -1;
}

/**
 * The eight 16-bit groups of an IPv6 address, or undefined. Accepts one "::" and a trailing
 * dotted quad in place of the last two groups, as RFC 4291 section 2.2 does; a group has 1-4 hex
 * digits. Zones and brackets are the caller's to refuse with a message. `groups` is written in
 * place, so a validator that only needs a yes or no can pass one scratch array for many reads.
 */
export function readIpv6(text: string, groups = new Uint16Array(8)): Uint16Array | undefined {
  const n = text.length;
  if (n < 2 || n > 45) return undefined;
  groups.fill(0);
  let count = 0;
  let gap = -1; // where "::" stood, as a group index
  let i = 0;
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return undefined;
    gap = 0;
    i = 2;
    if (i === n) return groups;
  }
  for (;;) {
    const groupStart = i;
    let v = 0;
    while (i < n && i - groupStart < 5) {
      const c = text.charCodeAt(i);
      const h = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
      if (h < 0) break;
      v = v * 16 + h;
      i++;
    }
    const len = i - groupStart;
    if (i < n && text.charCodeAt(i) === 46) {
      // An embedded IPv4 part: it must be the last thing and take two groups' places.
      if (count > 6 || (gap < 0 && count !== 6)) return undefined;
      const v4 = readIpv4(text, groupStart, n);
      if (v4 < 0) return undefined;
      groups[count++] = v4 >>> 16;
      groups[count++] = v4 & 0xffff;
      break;
    }
    if (len === 0 || len > 4 || count === 8) return undefined;
    groups[count++] = v;
    if (i === n) break;
    if (text.charCodeAt(i) !== 58) return undefined;
    i++;
    if (i < n && text.charCodeAt(i) === 58) {
      if (gap >= 0) return undefined; // a second "::"
      gap = count;
      i++;
      if (i === n) break;
    } else if (i === n) {
      return undefined; // a single trailing ':'
    }
  }
  if (gap < 0) return count === 8 ? groups : undefined;
  // "::" stands for at least one group (RFC 5952 section 4.2.2 says to write one zero group as 0,
  // but RFC 4291 allows "::" for it, and so do inet_pton and Go).
  if (count > 7) return undefined;
  const tail = count - gap;
  groups.copyWithin(8 - tail, gap, count);
  groups.fill(0, gap, 8 - tail);
  return groups;
}

/** RFC 5952 text: lowercase, no leading zeros, the longest run of two or more zero groups (the first of equals) as "::". */
export function formatIpv6(g: Uint16Array): string {
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  // RFC 5952 section 5: IPv4-mapped addresses keep the dotted quad, as Node, Go and inet_ntop print them.
  if (bestAt === 0 && bestLen === 5 && g[5] === 0xffff) {
    return `::ffff:${g[6]! >>> 8}.${g[6]! & 0xff}.${g[7]! >>> 8}.${g[7]! & 0xff}`;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestAt) {
      out += i === 0 ? '::' : ':';
      i += bestLen - 1;
      continue;
    }
    out += g[i]!.toString(16);
    if (i < 7) out += ':';
  }
  return out;
}

/** The groups as one 128-bit integer. */
export function ipv6Value(g: Uint16Array): bigint {
  // A double holds 53 bits exactly, so the 32-bit halves are joined as BigInts.
  const h = (BigInt(g[0]! * 0x10000 + g[1]!) << 32n) | BigInt(g[2]! * 0x10000 + g[3]!);
  const l = (BigInt(g[4]! * 0x10000 + g[5]!) << 32n) | BigInt(g[6]! * 0x10000 + g[7]!);
  return (h << 64n) | l;
}

/** The groups of a 128-bit integer. */
export function ipv6Groups(value: bigint): Uint16Array {
  const g = new Uint16Array(8);
  for (let i = 7; i >= 0; i--) {
    g[i] = Number(value & 0xffffn);
    value >>= 16n;
  }
  return g;
}

/** Dotted-quad text of a 32-bit value. */
export function formatIpv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}
