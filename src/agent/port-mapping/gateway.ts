import { z } from 'zod';
import { run } from '../../core/exec.js';
import { IpAddress } from '../../core/net/address.js';

/**
 * The IPv4 default gateway, where PCP and NAT-PMP servers live (RFC 6886 section 3.1, RFC 6887
 * section 8.1), and our own address toward it, which a PCP request must carry. Read from
 * `ip -j route`, never from a route through the WireGuard interface itself.
 */

const routes = z.array(z.object({ dst: z.string().optional(), gateway: z.string().optional(), dev: z.string().optional(), prefsrc: z.string().optional(), metric: z.number().optional() }).passthrough()).max(4096);

export interface GatewayInfo {
  gateway: IpAddress;
  local: IpAddress;
  dev: string;
}

function parse(text: string): z.infer<typeof routes> {
  try {
    const r = routes.safeParse(JSON.parse(text || '[]'));
    return r.success ? r.data : [];
  } catch {
    return [];
  }
}

/** From `ip -j -4 route show default` and `ip -j -4 route get GW` output. */
export function pickGateway(defaults: string, routeGet: (gw: string) => string | undefined, exclude: string): GatewayInfo | null {
  const best = parse(defaults)
    .filter((r) => r.gateway && r.dev !== exclude && IpAddress.tryParse(r.gateway)?.family === 4)
    .sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0))[0];
  if (!best?.gateway) return null;
  const via = parse(routeGet(best.gateway) ?? '')[0];
  const local = via?.prefsrc ? IpAddress.tryParse(via.prefsrc) : undefined;
  if (!local || local.family !== 4) return null;
  return { gateway: IpAddress.parse(best.gateway), local, dev: best.dev ?? via.dev ?? '' };
}

export async function findGateway(exclude: string): Promise<GatewayInfo | null> {
  const d = await run('ip', ['-j', '-4', 'route', 'show', 'default'], { allowFail: true });
  if (d.code !== 0) return null;
  const gws = parse(d.stdout).map((r) => r.gateway).filter((g): g is string => !!g && IpAddress.tryParse(g) !== undefined);
  const got = new Map<string, string>();
  for (const g of gws.slice(0, 4)) {
    const r = await run('ip', ['-j', '-4', 'route', 'get', g], { allowFail: true });
    if (r.code === 0) got.set(g, r.stdout);
  }
  return pickGateway(d.stdout, (g) => got.get(g), exclude);
}
