import { readFile } from 'node:fs/promises';
import { IpAddress } from '../../core/net/address.js';

/**
 * The IPv4 default gateway, where NAT-PMP and PCP servers listen (RFC 6886 section 3.1, RFC 6887
 * section 8.1). Read from the kernel's routing table: one line per route, little-endian hex.
 */
export function parseDefaultGateway(procNetRoute: string): IpAddress | null {
  for (const line of procNetRoute.split('\n').slice(1, 1000)) {
    const f = line.trim().split(/\s+/);
    // Iface Destination Gateway Flags ...; RTF_GATEWAY is 0x2.
    if (f.length < 4 || f[1] !== '00000000' || !/^[0-9A-Fa-f]{8}$/.test(f[2])) continue;
    if ((parseInt(f[3], 16) & 0x2) === 0) continue;
    const b = Buffer.alloc(4);
    b.writeUInt32LE(parseInt(f[2], 16));
    return IpAddress.fromValue(4, BigInt(b.readUInt32BE(0)));
  }
  return null;
}

export async function defaultGateway4(): Promise<IpAddress | null> {
  try {
    return parseDefaultGateway(await readFile('/proc/net/route', 'utf8'));
  } catch {
    return null;
  }
}
