import { InvalidArgumentError } from 'commander';
import { parseCidr, parseIPv4, parseSubnet } from '../core/ipv4.js';

/** Commander argument parsers: a bad value fails before anything runs, naming the option and the fix. */

export function endpointArg(v: string): string {
  const m = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new InvalidArgumentError(`"${v}" must be HOST:PORT, e.g. 203.0.113.2:51820 or vpn.example.org:51820`);
  return v;
}

export function addressWithPrefixArg(v: string): string {
  const [ip, len] = v.split('/');
  const c = parseCidr(v);
  if (!c || parseIPv4(ip) === undefined || Number(len) > 30 || Number(len) < 8) throw new InvalidArgumentError(`"${v}" must be an address with a prefix of /8 to /30, e.g. 10.99.0.1/24`);
  return v;
}

export function subnetArg(v: string): string {
  if (!parseSubnet(v)) {
    throw new InvalidArgumentError(`"${v}" must be a subnet with host bits clear, e.g. 10.98.0.0/24`);
  }
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

export function routesArg(v: string): string[] {
  return v.split(',').map((r) => subnetArg(r.trim()));
}

export function durationArg(v: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(v);
  if (!m || Number(m[1]) === 0) throw new InvalidArgumentError(`"${v}" must be a duration like 90s, 30m or 2h`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}
