import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { Agent } from '../agent/agent.js';
import { enrol } from '../agent/enrol.js';
import { describeTransport } from '../agent/join-transport.js';
import { decodeJoinCode } from '../core/join-code.js';
import { createLogger } from '../core/log.js';
import { keepRunning } from '../core/long-running.js';
import { agentUnit } from '../core/systemd/units.js';
import { enableHint, installUnit, SYSTEMD_DIR, thisPrograms } from './service.js';

/**
 * The join code holds a private key: from stdin or a 0600 file, it never appears in argv (ps,
 * /proc/PID/cmdline) or in the shell's history.
 */
async function readCode(arg: string | undefined, file: string | undefined): Promise<string> {
  if (file !== undefined) {
    if (arg !== undefined) throw new Error('give the code once: as --code-file or as an argument, not both');
    if ((statSync(file).mode & 0o077) !== 0) throw new Error(`${file} holds a join code (a key) and must be mode 0600 (chmod 600 ${file})`);
    return readFileSync(file, 'utf8').trim();
  }
  if (arg === undefined || arg === '-') {
    if (process.stdin.isTTY) process.stderr.write('paste the join code and press Enter: ');
    const rl = createInterface({ input: process.stdin, terminal: false });
    const line = await new Promise<string>((resolve, reject) => {
      rl.once('line', resolve);
      rl.once('close', () => reject(new Error('no join code on stdin; run "wgp2p join -" and paste the code, or use --code-file FILE')));
    });
    rl.close();
    return line.trim();
  }
  process.stderr.write('wgp2p: the join code on the command line is visible to other users (ps) and stays in your shell history; next time use "wgp2p join -" or --code-file\n');
  return arg;
}

export function registerJoin(program: Command): void {
  program
    .command('join')
    .description('join this device to a hub with a code from "wgp2p node add NAME --agent --join", then run the agent')
    .argument('[code]', '"-": read the code from stdin (paste it and press Enter); the code itself also works, but then it shows in ps and in your shell history')
    .option('--code-file <file>', 'read the code from a file (mode 0600: the code is a key)')
    .option('--interface <if>', 'WireGuard interface to create (default: the node name)')
    .option('--dir <dir>', 'where to write the config and agent file', '/etc/wgp2p')
    .option('--service', 'install a systemd unit (wgp2p-agent@IF.service) for the interface and the agent instead of running it now')
    .option('--systemd-dir <dir>', 'where --service installs the unit', SYSTEMD_DIR)
    .action(async (arg: string | undefined, o: { codeFile?: string; interface?: string; dir: string; service?: boolean; systemdDir: string }) => {
      const code = decodeJoinCode(await readCode(arg, o.codeFile));
      const ifname = o.interface ?? code.name;
      if (!/^[A-Za-z0-9_=+.-]{1,15}$/.test(ifname)) throw new Error(`--interface "${ifname}" is not a valid interface name (1-15 characters)`);
      // Rendered before the code is spent: a directory a unit cannot name fails with nothing changed.
      const unitFor = (name: string) => agentUnit(thisPrograms(), { name, ifname, dir: resolve(o.dir) });
      if (o.service) unitFor(code.name);
      mkdirSync(o.dir, { recursive: true, mode: 0o700 });
      if (existsSync(`${o.dir}/${ifname}.conf`)) throw new Error(`${o.dir}/${ifname}.conf exists already; this device seems to have joined before`);
      const done = await enrol(code, { dir: o.dir, ifname, progress: (line) => console.log(line) });
      console.log(`joined as ${done.config.name} ${describeTransport(done.transport)}: ${done.conf} is up, agent settings in ${done.agentJson}`);
      if (o.service) {
        const unit = unitFor(done.config.name);
        console.log(`installed ${installUnit(unit, o.systemdDir)}; it brings ${ifname} up from ${done.conf} and runs the agent. Start it now and at every boot with:\n  ${enableHint(unit)}`);
        return;
      }
      console.log(`to run the agent at every boot instead: wgp2p service agent --name ${done.config.name} --interface ${ifname} --dir ${resolve(o.dir)} --install`);
      const agentLog = createLogger('agent');
      keepRunning(agentLog);
      const agent = new Agent({ config: done.config, ifname, log: agentLog });
      await agent.start();
      const stop = () => void agent.stop().finally(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
