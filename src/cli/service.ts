import { existsSync, mkdirSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { IpAddress } from '../core/net/address.js';
import { agentUnit, hubUnit, relayUnit, type Programs, type Unit } from '../core/systemd/units.js';
import { collectRelayMachineAddresses, portRangeArg } from './validate.js';

/** `wgp2p service hub|relay|agent`: print a role's systemd unit, or install it. */

export const SYSTEMD_DIR = '/etc/systemd/system';

/** Debian's wg-quick, where PATH has none (wireguard-tools installs it there). */
const WG_QUICK_FALLBACK = '/usr/bin/wg-quick';

function inPath(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    if (d.startsWith('/') && existsSync(join(d, cmd))) return join(d, cmd);
  }
  return undefined;
}

/** This node and this wgp2p: a unit runs what wrote it. */
export function thisPrograms(): Programs {
  return { node: process.execPath, cli: realpathSync(fileURLToPath(new URL('./main.js', import.meta.url))), wgQuick: inPath('wg-quick') ?? WG_QUICK_FALLBACK };
}

export interface Delivery {
  install?: boolean;
  systemdDir?: string;
}

/** The commands that start a unit now and at every boot. */
export const enableHint = (unit: Unit) => `systemctl daemon-reload && systemctl enable --now ${unit.name}`;

/**
 * Writes the unit (0644: systemd reads units as any user, and this one holds no secret) under a
 * temporary name first, so a unit is whole or absent. Returns its path.
 */
export function installUnit(unit: Unit, systemdDir = SYSTEMD_DIR): string {
  mkdirSync(systemdDir, { recursive: true, mode: 0o755 });
  const path = join(systemdDir, unit.name);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, unit.text, { mode: 0o644 });
  renameSync(tmp, path);
  return path;
}

/** Prints the unit, or installs it and says how to start it. */
function deliver(unit: Unit, o: Delivery): void {
  if (!o.install) {
    process.stdout.write(unit.text);
    return;
  }
  console.log(`installed ${installUnit(unit, o.systemdDir)}; start it now and at every boot with:\n  ${enableHint(unit)}`);
}

const deliveryOptions = (c: Command) =>
  c.option('--install', `write the unit to --systemd-dir instead of printing it`).option('--systemd-dir <dir>', 'where --install writes the unit', SYSTEMD_DIR);

export function registerService(program: Command): void {
  const service = program.command('service').description('systemd units for the hub, a relay and an agent: print one, or --install it');

  deliveryOptions(
    service
      .command('hub')
      .description("the hub: brings its interface up from hub.conf, then runs \"wgp2p hub run\"")
      .requiredOption('--dir <dir>', 'the hub directory ("hub init --dir")')
      .option('--conf <file>', "the hub's wg-quick file (default: DIR/hub.conf); the interface is named after it")
      .option('--no-relay', 'no relay inside the hub (as "hub run --no-relay")')
      .option('--relay-address <ip...>', 'as "hub run --relay-address"'),
  ).action((o: Delivery & { dir: string; conf?: string; relay: boolean; relayAddress?: string[] }) => {
    deliver(hubUnit(thisPrograms(), { dir: resolve(o.dir), conf: o.conf === undefined ? undefined : resolve(o.conf), noRelay: !o.relay, relayAddresses: o.relayAddress }), o);
  });

  deliveryOptions(
    service
      .command('relay')
      .description('a relay machine: brings NAME.conf up from --dir, then runs "wgp2p relay run --config DIR/NAME.relay.json"')
      .requiredOption('--name <name>', 'the relay\'s name ("node add NAME --relay")')
      .requiredOption('--address <ip>', "this machine's public address, as \"relay run --address\" (twice for both families)", collectRelayMachineAddresses)
      .option('--dir <dir>', 'where NAME.conf and NAME.relay.json are (mode 0600)', '/etc/wgp2p')
      .option('--ports <min-max>', 'as "relay run --ports"', portRangeArg)
      .option('--userspace', 'as "relay run --userspace"'),
  ).action((o: Delivery & { name: string; address: IpAddress[]; dir: string; ports?: [number, number]; userspace?: boolean }) => {
    deliver(relayUnit(thisPrograms(), { name: o.name, dir: resolve(o.dir), addresses: o.address.map(String), ports: o.ports, userspace: o.userspace }), o);
  });

  deliveryOptions(
    service
      .command('agent')
      .description('an agent: brings IF.conf up from --dir, then runs "wgp2p agent run --config DIR/NAME.agent.json"')
      .requiredOption('--name <name>', "the node's name")
      .option('--interface <if>', 'the interface, IF.conf in --dir (default: the name)')
      .option('--dir <dir>', 'where IF.conf and NAME.agent.json are (mode 0600)', '/etc/wgp2p'),
  ).action((o: Delivery & { name: string; interface?: string; dir: string }) => {
    deliver(agentUnit(thisPrograms(), { name: o.name, ifname: o.interface ?? o.name, dir: resolve(o.dir) }), o);
  });
}
