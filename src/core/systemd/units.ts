import { basename, join } from 'node:path';
import { IpAddress } from '../net/address.js';
import { execLine, unitIfname, unitPath, UnitSyntaxError } from './syntax.js';

/**
 * The systemd units of the three long-running roles: hub, relay, agent. Each unit brings its own
 * WireGuard interface up from the wg-quick file wgp2p wrote (ExecStartPre) and takes it down after
 * (ExecStopPost), rather than leaning on wg-quick@IF: that unit reads /etc/wireguard/IF.conf, and
 * the files are in wgp2p's directory beside the token file (issue 10: after a reboot the
 * interface never came up). One unit per role also means `systemctl restart` gives a known state:
 * the interface and the process that drives it start together. The units name files; the keys and
 * tokens stay in those 0600 files, never in the unit.
 */

/** Absolute paths of what the units run. */
export interface Programs {
  node: string;
  /** wgp2p's dist/src/cli/main.js. */
  cli: string;
  wgQuick: string;
}

export interface Unit {
  /** The unit's file name, e.g. wgp2p-agent@laptop.service. */
  name: string;
  text: string;
}

/** Long enough that a crash loop costs little, short enough that tunnels are back before TCP over them gives up. */
export const RESTART_SEC = 2;

function dirPath(what: string, dir: string): string {
  return unitPath(what, dir.length > 1 ? dir.replace(/\/+$/, '') : dir);
}

/** systemd creates (0700) and owns a directory under /etc or /var/lib; anywhere else it is left to wgp2p, which makes it 0700. */
function directoryLines(dir: string): string[] {
  for (const [root, key] of [['/etc/', 'ConfigurationDirectory'], ['/var/lib/', 'StateDirectory']] as const) {
    if (dir.startsWith(root) && dir.length > root.length) return [`${key}=${dir.slice(root.length)}`, `${key}Mode=0700`];
  }
  return [`# ${dir} is outside /etc and /var/lib, so systemd does not manage it; wgp2p created it 0700.`];
}

function address(what: string, text: string): string {
  try {
    return IpAddress.parse(text).toString();
  } catch (err) {
    throw new UnitSyntaxError(`${what} "${text}" is not an IP address (${(err as Error).message})`);
  }
}

function programs(p: Programs): Programs {
  return { node: unitPath('node', p.node), cli: unitPath("wgp2p's main.js", p.cli), wgQuick: unitPath('wg-quick', p.wgQuick) };
}

function render(p: Programs, o: { role: string; description: string; dir: string; conf: string; start: string[] }): string {
  const wgQuick = (action: 'up' | 'down') => execLine([p.wgQuick, action, o.conf]);
  return [
    `# wgp2p ${o.role}, written by wgp2p ("wgp2p service ${o.role} --install" writes it again). It names`,
    '# files; the keys and tokens are in those files (0600), none is in this unit.',
    '[Unit]',
    `Description=${o.description.replace(/%/g, '%%')}`,
    'Documentation=man:wg-quick(8)',
    'Wants=network-online.target nss-lookup.target',
    'After=network-online.target nss-lookup.target',
    '# Never stop retrying: a network that comes up late must not leave this machine off the mesh.',
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=simple',
    "# wg-quick tries the kernel's WireGuard first and falls back to wireguard-go; a hub given as a",
    '# DNS name is resolved again until the resolver works (early in a boot it may not).',
    'Environment=WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_ENDPOINT_RESOLUTION_RETRIES=infinity',
    'UMask=0077',
    ...directoryLines(o.dir),
    '# A left-over interface (a crash, an earlier "wg-quick up", "wgp2p join") goes first, so "up" finds',
    '# its name free. wireguard-go runs in this unit: a restart brings the interface up afresh.',
    `ExecStartPre=-${wgQuick('down')}`,
    `ExecStartPre=${wgQuick('up')}`,
    `ExecStart=${execLine([p.node, p.cli, ...o.start])}`,
    `ExecStopPost=-${wgQuick('down')}`,
    'Restart=always',
    `RestartSec=${RESTART_SEC}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

export interface HubUnitOptions {
  dir: string;
  /** The hub's wg-quick file (default DIR/hub.conf); the interface is named after it. */
  conf?: string;
  noRelay?: boolean;
  relayAddresses?: readonly string[];
}

export function hubUnit(p: Programs, o: HubUnitOptions): Unit {
  const dir = dirPath('--dir', o.dir);
  const conf = unitPath('--conf', o.conf ?? join(dir, 'hub.conf'));
  if (!conf.endsWith('.conf')) throw new UnitSyntaxError(`--conf "${conf}" must end in .conf: wg-quick names the interface after the file`);
  const ifname = unitIfname(`the interface of ${conf}`, basename(conf, '.conf'));
  const relay = [...(o.noRelay ? ['--no-relay'] : []), ...(o.relayAddresses ?? []).flatMap((a) => ['--relay-address', address('--relay-address', a)])];
  return {
    name: 'wgp2p-hub.service',
    text: render(programs(p), { role: 'hub', description: `wgp2p hub (interface ${ifname})`, dir, conf, start: ['hub', 'run', '--dir', dir, '--interface', ifname, ...relay] }),
  };
}

export interface RelayUnitOptions {
  /** The relay's node name: NAME.conf and NAME.relay.json in `dir`; the interface is NAME. */
  name: string;
  dir: string;
  addresses: readonly string[];
  ports?: readonly [number, number];
  userspace?: boolean;
}

export function relayUnit(p: Programs, o: RelayUnitOptions): Unit {
  const name = unitIfname('--name', o.name);
  const dir = dirPath('--dir', o.dir);
  if (o.addresses.length === 0) throw new UnitSyntaxError("--address is required: the relay machine's public address");
  const start = ['relay', 'run', '--config', unitPath('the relay file', join(dir, `${name}.relay.json`)), ...o.addresses.flatMap((a) => ['--address', address('--address', a)])];
  if (o.ports) {
    const [lo, hi] = o.ports;
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || lo > hi) throw new UnitSyntaxError(`--ports ${lo}-${hi} is not a range of UDP ports (1-65535, low-high)`);
    start.push('--ports', `${lo}-${hi}`);
  }
  if (o.userspace) start.push('--userspace');
  return { name: `wgp2p-relay@${name}.service`, text: render(programs(p), { role: 'relay', description: `wgp2p relay ${name}`, dir, conf: unitPath('the relay config', join(dir, `${name}.conf`)), start }) };
}

export interface AgentUnitOptions {
  /** The node's name: NAME.agent.json in `dir`. */
  name: string;
  /** The interface: IF.conf in `dir` (`wgp2p join --interface`, default the name). */
  ifname: string;
  dir: string;
}

export function agentUnit(p: Programs, o: AgentUnitOptions): Unit {
  const name = unitIfname('the node name', o.name);
  const ifname = unitIfname('--interface', o.ifname);
  const dir = dirPath('--dir', o.dir);
  return {
    name: `wgp2p-agent@${ifname}.service`,
    text: render(programs(p), {
      role: 'agent',
      description: `wgp2p agent ${name} (interface ${ifname})`,
      dir,
      conf: unitPath('the interface config', join(dir, `${ifname}.conf`)),
      start: ['agent', 'run', '--config', unitPath('the agent file', join(dir, `${name}.agent.json`)), '--interface', ifname],
    }),
  };
}
