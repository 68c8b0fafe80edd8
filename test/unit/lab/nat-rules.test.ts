import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { natRuleset } from '../../../src/lab/nat-rules.js';
import { loadTopology, parseTopology, type TopologyInput } from '../../../src/lab/topology.js';

const router = (profile: 'restricted' | 'open' | 'udp-blocked', ipv6?: { prefix: string; firewall?: 'stateful' | 'open' }): TopologyInput => ({
  name: 'rules',
  routers: [{ name: 'home', profile, wan: '203.0.113.10', lan: profile === 'open' ? '198.51.100.0/28' : '192.168.10.0/24', ...(ipv6 ? { ipv6 } : {}) }],
  hosts: [{ name: 'dev', network: 'home', address: profile === 'open' ? '198.51.100.2' : '192.168.10.2' }],
});
const rules = (t: TopologyInput) => natRuleset(parseTopology(t).routers[0]);

// Written out here, not generated: what the home router's table was before IPv6 existed, byte for byte.
const RESTRICTED = `table inet lab {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" ip saddr 192.168.10.0/24 masquerade
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct status dnat accept
    iifname "lan" accept
  }
}
`;

test('a router without IPv6 gets exactly the IPv4 rules it always had', () => {
  assert.equal(rules(router('restricted')), RESTRICTED);
  assert.doesNotMatch(rules(router('open')), /icmpv6|nfproto/);
});

test('RFC 6092 home router: only replies come in over IPv6, ICMPv6 errors and neighbour discovery pass, nothing is translated', () => {
  const text = rules(router('restricted', { prefix: '2001:db8:10::/48' }));
  assert.equal(
    text,
    `table inet lab {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" ip saddr 192.168.10.0/24 masquerade
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
    iifname "wan" drop
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "wan" icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept
    iifname "wan" meta nfproto ipv6 drop
    ct status dnat accept
    iifname "lan" accept
  }
}
`,
  );
  // The only NAT rule is IPv4's (ip saddr): no NAT66.
  assert.deepEqual(text.split('\n').filter((l) => /masquerade|snat|dnat ip6/.test(l)).map((l) => l.trim()), ['oifname "wan" ip saddr 192.168.10.0/24 masquerade']);
});

test('an open IPv6 firewall forwards everything from the WAN; its LAN side follows the profile', () => {
  const forward = (t: string) => t.slice(t.indexOf('chain forward'));
  assert.match(forward(rules(router('restricted', { prefix: '2001:db8:10::/48', firewall: 'open' }))), /established,related accept\n {4}iifname "wan" meta nfproto ipv6 accept\n/);
  // An open IPv4 profile ends in "accept": a stateful IPv6 firewall must drop before it.
  const open = forward(rules(router('open', { prefix: '2001:db8:10::/48' })));
  assert.ok(open.indexOf('meta nfproto ipv6 drop') < open.lastIndexOf('    accept\n'), open);
  // udp-blocked blocks UDP out in both families.
  assert.match(forward(rules(router('udp-blocked', { prefix: '2001:db8:10::/48' }))), /nfproto ipv6 drop\n[\s\S]*iifname "lan" meta l4proto udp drop/);
});

test('every shipped topology builds IPv4-only rules unless it asks for IPv6', async () => {
  const dir = new URL('../../../../topologies/', import.meta.url);
  for (const f of readdirSync(dir).filter((x) => /\.(ya?ml|json)$/.test(x))) {
    const plan = await loadTopology(new URL(f, dir).pathname);
    for (const r of plan.routers) assert.equal(/icmpv6|nfproto ipv6/.test(natRuleset(r)), r.ipv6 !== undefined, `${f}: router ${r.name}`);
  }
});
