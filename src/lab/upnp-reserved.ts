import type { IpAddress } from '../core/net/address.js';
import { Cidr } from '../core/net/cidr.js';

/** Ranges miniupnpd 2.3 treats as reserved: with such a WAN address it refuses every mapping. */
const MINIUPNPD_RESERVED = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12',
  '192.0.0.0/24', '192.0.2.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '224.0.0.0/3',
].map((c) => Cidr.parse(c));

export function upnpRefusesWan(wan: IpAddress): boolean {
  return MINIUPNPD_RESERVED.some((c) => c.contains(wan));
}
