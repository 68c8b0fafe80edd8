import { z } from 'zod';
import { run } from '../core/exec.js';
import { IpAddress } from '../core/net/address.js';
import { Prefixed } from '../core/net/cidr.js';
import type { Logger } from '../core/log.js';
import { hostNumberOfProxied } from './address-plan.js';
import { desiredPeersOf } from './device-peers.js';
import { ENROL_RETIRE_MS } from './peer-sync.js';
import type { HubSettings, NodeRecord } from './store/model.js';

/**
 * A join code's one-time tunnel reaches the enrolment API and nothing else, with or without
 * nftables (issue 10, finding 6). Its peer on the hub holds one address per family (the node's
 * host number in the proxied subnets, device-peers.ts), and two things fence that address:
 *
 * - The control API answers it only on POST /v1/enrol (`joinTunnelRoute`); every other route,
 *   and every WebSocket, gets 403.
 * - The hub's kernel does not forward from it. The hub config turns on ip_forward and accepts
 *   wg -> wg in iptables for proxied clients, and forward-filter.ts needs nftables, so the hub
 *   adds one policy rule per one-time address: `from ADDR iif WG prohibit`, after the `local`
 *   rule (priority 0) and before `main`. Packets to the hub's own addresses are delivered
 *   (the local table matches first, so the enrolment request arrives); anything to be routed
 *   onwards is refused. Replies from the hub start on the hub (no iif) and are not affected.
 *   Why not narrower AllowedIPs or a route: the one-time peer must be allowed its own source
 *   address, and every node routes the proxied subnet to the hub for proxied clients, whose
 *   addresses interleave with the join addresses, so no prefix covers only the latter.
 *
 * What the rule does not do: limit which local ports the address reaches. A service of the
 * operator listening on all addresses of the hub is reachable through a join tunnel, as it is
 * from every node; only nftables (or the service binding its own address) can narrow that.
 * Fib rules are checked one by one for every routed packet, so there is one rule per join code
 * the hub still answers for (outstanding codes, not every node that ever joined).
 */

/** Between `local` (0) and `main` (32766); any free value would do. */
export const JOIN_FENCE_PRIORITY = 5210;

/** The node whose join tunnel has this address (the proxied subnet at its host number, while it has a join key), if any. */
export function joinTunnelNode(hub: HubSettings, nodeAt: (hostNumber: number) => NodeRecord | undefined, address: IpAddress): NodeRecord | undefined {
  const host = hostNumberOfProxied(hub, address) ?? (hub.proxiedSubnet6.contains(address) ? Number(hub.proxiedSubnet6.offsetOf(address)) : undefined);
  const node = host === undefined ? undefined : nodeAt(host);
  return node && node.kind !== 'client' && node.enrolKey !== null ? node : undefined;
}

/** The only request a join tunnel may make. */
export function joinTunnelRoute(method: string | undefined, url: string | undefined): boolean {
  return method === 'POST' && url === '/v1/enrol';
}

/** The addresses whose one-time peers the hub's device holds now: the ones to fence. */
export function fencedAddresses(hub: HubSettings, nodes: Iterable<NodeRecord>, now: number): IpAddress[] {
  const out: IpAddress[] = [];
  for (const n of nodes) {
    if (!n.enrolKey) continue;
    for (const p of desiredPeersOf(n, hub, now)) if (p.publicKey === n.enrolKey) for (const a of p.allowedIps) out.push(Prefixed.parse(a).address);
  }
  return out;
}

const ruleListSchema = z.array(z.object({ src: z.string() }).passthrough());

export class JoinFence {
  private readonly current = new Set<string>();
  /** A used code's key stays on the device ENROL_RETIRE_MS after the node joined; its fence as long. */
  private readonly leaving = new Map<string, NodeJS.Timeout>();

  private constructor(
    private readonly ifname: string,
    private readonly hub: HubSettings,
    private readonly log: Logger,
    private readonly retireMs: number,
  ) {}

  /** Undefined where policy rules cannot be set (not root): the caller says so. Rules of an earlier run are taken over. */
  static async create(ifname: string, hub: HubSettings, log: Logger, retireMs = ENROL_RETIRE_MS): Promise<JoinFence | undefined> {
    if (process.getuid?.() !== 0) return undefined;
    const fence = new JoinFence(ifname, hub, log, retireMs);
    for (const family of ['-4', '-6']) {
      const r = await run('ip', [family, '-j', 'rule', 'show', 'priority', String(JOIN_FENCE_PRIORITY)], { allowFail: true }).catch(() => ({ code: 1, stdout: '' }));
      if (r.code !== 0) return undefined;
      const parsed = ruleListSchema.safeParse(JSON.parse(r.stdout.trim() || '[]'));
      for (const rule of parsed.success ? parsed.data : []) {
        const ip = IpAddress.tryParse(rule.src);
        if (ip) fence.current.add(ip.toString());
      }
    }
    return fence;
  }

  async apply(nodes: Iterable<NodeRecord>, now = Date.now()): Promise<void> {
    const wanted = new Set(fencedAddresses(this.hub, nodes, now).map(String));
    for (const a of wanted) {
      clearTimeout(this.leaving.get(a));
      this.leaving.delete(a);
      if (!this.current.has(a)) {
        await this.rule('add', a);
        this.current.add(a);
      }
    }
    for (const a of this.current) {
      if (wanted.has(a) || this.leaving.has(a)) continue;
      const t = setTimeout(() => {
        this.leaving.delete(a);
        this.current.delete(a);
        this.rule('del', a).catch((err: unknown) => this.log.warn({ err, address: a }, 'could not remove a join tunnel\'s fence; it refuses forwarding for an address nobody holds'));
      }, this.retireMs);
      t.unref();
      this.leaving.set(a, t);
    }
  }

  close(): void {
    for (const t of this.leaving.values()) clearTimeout(t);
    this.leaving.clear();
  }

  private async rule(op: 'add' | 'del', address: string): Promise<void> {
    const family = IpAddress.parse(address).family === 6 ? '-6' : '-4';
    await run('ip', [family, 'rule', op, 'priority', String(JOIN_FENCE_PRIORITY), 'from', address, 'iif', this.ifname, 'prohibit']);
  }
}
