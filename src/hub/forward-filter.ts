import { run } from '../core/exec.js';
import { Cidr } from '../core/net/cidr.js';
import { nodeAddress6, proxiedAddress6 } from './address-plan.js';
import type { HubSettings, NodeRecord } from './store/model.js';

/**
 * Groups decide who may reach whom, also through the hub. Direct peers are kept apart by
 * WireGuard itself (an agent only has the peers it may reach), but the hub forwards tunnel to
 * tunnel for proxied clients and proxied agents, and a device can widen its own hub peer's
 * AllowedIPs. So the hub's kernel only forwards between two addresses of one group.
 *
 * One nftables set per group holds its members' addresses (tunnel, proxied, routes behind
 * agents); one rule per group checks source and destination against it. That is O(nodes) set
 * elements and O(groups) rules, however the groups overlap. The ruleset is replaced atomically,
 * and left in place when the hub stops: the last known groups stay enforced until it returns.
 */

export const FORWARD_TABLE = 'wgp2p_hub';

export function forwardRuleset(ifname: string, hub: HubSettings, nodes: Iterable<NodeRecord>): string {
  // One pass over the nodes (the hub rebuilds this on directory changes, coalesced). Each group
  // has a set per family: nftables sets hold one address type.
  const members = new Map<string, { 4: Set<string>; 6: Set<string> }>();
  for (const n of nodes) {
    for (const g of n.groups) {
      let set = members.get(g);
      if (!set) members.set(g, (set = { 4: new Set(), 6: new Set() }));
      if (n.kind === 'relay') continue;
      const add = (c: Cidr) => set![c.family].add(c.toString());
      add(Cidr.host(n.address));
      add(Cidr.host(nodeAddress6(hub, n.hostNumber)));
      if (n.proxiedAddress) {
        add(Cidr.host(n.proxiedAddress));
        add(Cidr.host(proxiedAddress6(hub, n.hostNumber)));
      }
      for (const r of n.routes) add(r);
    }
  }
  const groups = [...members.keys()].sort();
  const set = (name: string, type: string, group: string, elements: Set<string>) =>
    `  set ${name} {\n    type ${type}; flags interval; auto-merge; comment "group ${group}"\n${elements.size ? `    elements = { ${[...elements].join(', ')} }\n` : ''}  }\n`;
  const sets = groups.map((g, k) => set(`g${k}`, 'ipv4_addr', g, members.get(g)![4]) + set(`h${k}`, 'ipv6_addr', g, members.get(g)![6]));
  const i = JSON.stringify(ifname);
  const rules = groups.map((_, k) => `    iifname ${i} oifname ${i} ip saddr @g${k} ip daddr @g${k} accept\n    iifname ${i} oifname ${i} ip6 saddr @h${k} ip6 daddr @h${k} accept\n`);
  return (
    `table inet ${FORWARD_TABLE} {\n${sets.join('')}  chain forward {\n    type filter hook forward priority filter - 10; policy accept;\n` +
    `${rules.join('')}    iifname ${i} oifname ${i} drop\n  }\n}\n`
  );
}

export class ForwardFilter {
  private last = '';

  private constructor(
    private readonly ifname: string,
    private readonly hub: HubSettings,
  ) {}

  /** Undefined where nftables cannot be used (not root, no nft): the caller says groups are not enforced through the hub. */
  static async create(ifname: string, hub: HubSettings): Promise<ForwardFilter | undefined> {
    if (process.getuid?.() !== 0) return undefined;
    const r = await run('nft', ['list', 'tables'], { allowFail: true }).catch(() => ({ code: 1 }));
    return r.code === 0 ? new ForwardFilter(ifname, hub) : undefined;
  }

  async apply(nodes: Iterable<NodeRecord>): Promise<void> {
    const rules = forwardRuleset(this.ifname, this.hub, nodes);
    if (rules === this.last) return;
    // Delete and create in one transaction: never a moment without the filter.
    const script = `table inet ${FORWARD_TABLE}\ndelete table inet ${FORWARD_TABLE}\n${rules}`;
    await run('nft', ['-f', '-'], { input: script });
    this.last = rules;
  }
}
