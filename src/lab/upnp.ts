import { randomUUID } from 'node:crypto';
import { NFT_TABLE } from './nat-rules.js';
import { ipv4SubnetOf, type RouterPlan } from './plan.js';

/** miniupnpd (nftables backend) serving UPnP-IGD, NAT-PMP and PCP on the router's LAN bridge. */
export function miniupnpdConfig(r: RouterPlan): string {
  return [
    'ext_ifname=wan',
    'listening_ip=lan',
    'http_port=0',
    // NAT-PMP and PCP share port 5351 and this one switch in miniupnpd 2.3.
    'enable_natpmp=yes',
    'secure_mode=yes',
    'system_uptime=yes',
    'notify_interval=60',
    'clean_ruleset_interval=600',
    `uuid=${randomUUID()}`,
    `upnp_table_name=${NFT_TABLE}`,
    `upnp_nat_table_name=${NFT_TABLE}`,
    `allow 1024-65535 ${ipv4SubnetOf(r.lan).subnet} 1024-65535`,
    'deny 0-65535 0.0.0.0/0 0-65535',
    '',
  ].join('\n');
}

