import { proxyInputRules, proxyOutputRules } from './http-proxy.js';
import { ipv4Of, ipv4SubnetOf, type Firewall6, type RouterPlan } from './plan.js';

/** nftables table that holds a lab router's whole behaviour; miniupnpd is pointed at it too. */
export const NFT_TABLE = 'lab';
export const HAIRPIN_MAP = 'hairpin';

/**
 * The nftables ruleset that makes a router namespace behave like its NAT profile.
 * Interface names are fixed by the builder: "wan" upstream, "lan" (a bridge) for the inside.
 * The NAT is IPv4's. A router with an IPv6 prefix forwards IPv6 untranslated (no NAT66) through
 * the firewall its `ipv6.firewall` names; one without has IPv6 off in its namespace.
 */
export function natRuleset(r: RouterPlan): string {
  const wan = ipv4Of(r.wan, `router "${r.name}"`).toString();
  const lan = ipv4SubnetOf(r.lan).subnet.toString();
  const translates = r.nat !== 'open' && r.nat !== 'firewall';
  const pre: string[] = [];
  const post: string[] = [];
  const input: string[] = [];
  const forward: string[] = ['ct state established,related accept', ...(r.ipv6 ? forward6(r.ipv6.firewall) : [])];
  const output: string[] = [];

  if (r.upnp) {
    pre.push('jump prerouting_miniupnpd');
    post.push('jump postrouting_miniupnpd');
    forward.push('jump miniupnpd');
  }
  if (r.nat === 'cone' && r.exposedHost !== undefined) {
    // Endpoint-independent filtering: anything sent to the WAN address reaches the exposed host (section 6).
    pre.push(`iifname "wan" ip daddr ${wan} meta l4proto udp dnat ip to ${r.exposedHost}`);
  }
  if (r.hairpin) {
    // Filled at run time from conntrack events by the hairpin daemon: external port -> inside host:port.
    // A port the map lacks ends the rule at the lookup, so no separate "udp dport @map" test: 6.1
    // kernels (Debian 12's) refuse a map used as a set ("Invalid argument"; measured), 6.12 and 6.18 take both.
    pre.push(`iifname "lan" ip daddr ${wan} dnat ip to udp dport map @${HAIRPIN_MAP}`);
    // The inside receiver must see the sender's public address, and its reply must come back through us.
    post.push(`oifname "lan" ip saddr ${lan} ip daddr ${lan} ct status dnat snat ip to ${wan}`);
  }
  if (translates) {
    // MASQUERADE keeps the inside port unless the tuple is taken; fully-random makes the mapping endpoint-dependent.
    post.push(`oifname "wan" ip saddr ${lan} masquerade${r.nat === 'symmetric' ? ' fully-random' : ''}`);
  }

  if (r.nat !== 'open' && r.nat !== 'restricted-leaky') {
    // Home routers drop unsolicited WAN input; an accepted packet would be confirmed in conntrack and poison the port.
    input.push('iifname "wan" ct state established,related accept');
    // Neighbour discovery is not tracked by conntrack (an advertisement is "invalid" to it); without
    // it the internet core cannot resolve the router's IPv6 WAN address and nothing is routed in.
    if (r.ipv6) input.push('iifname "wan" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept');
    input.push('iifname "wan" drop');
  }

  if (r.nat === 'open') {
    forward.push('accept');
  } else {
    forward.push('ct status dnat accept');
    if (r.nat === 'udp-blocked') {
      forward.push('iifname "lan" meta l4proto udp drop', 'iifname "lan" tcp dport != { 80, 443 } drop');
    }
    if (r.nat === 'http-proxy') {
      // Nothing of the LAN is forwarded: its one way out is the proxy on this router (http-proxy.ts).
      forward.push('iifname "lan" drop');
      input.push(...proxyInputRules(r));
      output.push(...proxyOutputRules());
    }
    forward.push('iifname "lan" accept');
  }

  const chain = (name: string, head: string, rules: string[]) =>
    `  chain ${name} {\n    ${head}\n${rules.map((l) => `    ${l}\n`).join('')}  }\n`;
  let out = `table inet ${NFT_TABLE} {\n`;
  if (r.hairpin) out += `  map ${HAIRPIN_MAP} {\n    type inet_service : ipv4_addr . inet_service\n  }\n`;
  if (r.upnp) {
    out += chain('miniupnpd', '', []);
    out += chain('prerouting_miniupnpd', '', []);
    out += chain('postrouting_miniupnpd', '', []);
  }
  out += chain('prerouting', 'type nat hook prerouting priority dstnat; policy accept;', pre);
  out += chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', post);
  out += chain('input', 'type filter hook input priority filter; policy accept;', input);
  out += chain('forward', 'type filter hook forward priority filter; policy drop;', forward);
  if (output.length) out += chain('output', 'type filter hook output priority filter; policy accept;', output);
  out += '}\n';
  return out;
}

/**
 * IPv6 forwarding rules from the WAN side, after the established/related accept (which lets every
 * reply in, and the ICMPv6 errors about a flow). Outbound IPv6 then follows the profile's LAN rules,
 * so udp-blocked blocks UDP in both families.
 */
function forward6(firewall: Firewall6): string[] {
  if (firewall === 'open') return ['iifname "wan" meta nfproto ipv6 accept'];
  return [
    // RFC 4890 4.3.1: these errors must not be dropped (Packet Too Big is what PMTU discovery needs).
    'iifname "wan" icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept',
    // RFC 6092: only replies come in; unsolicited inbound is dropped, not rejected.
    'iifname "wan" meta nfproto ipv6 drop',
  ];
}
