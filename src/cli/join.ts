import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { Agent } from '../agent/agent.js';
import { enrol } from '../agent/enrol.js';
import { decodeJoinCode } from '../core/join-code.js';
import { createLogger } from '../core/log.js';
import { keepRunning } from '../core/long-running.js';

export function registerJoin(program: Command): void {
  program
    .command('join')
    .description('join this device to a hub with a code from "wgp2p node add NAME --agent --join", then run the agent')
    .argument('<code>', 'the join code')
    .option('--interface <if>', 'WireGuard interface to create (default: the node name)')
    .option('--dir <dir>', 'where to write the config and agent file', '/etc/wgp2p')
    .option('--service', 'install a systemd service for the agent instead of running it now')
    .action(async (text: string, o: { interface?: string; dir: string; service?: boolean }) => {
      const code = decodeJoinCode(text);
      const ifname = o.interface ?? code.name;
      if (!/^[A-Za-z0-9_=+.-]{1,15}$/.test(ifname)) throw new Error(`--interface "${ifname}" is not a valid interface name (1-15 characters)`);
      mkdirSync(o.dir, { recursive: true, mode: 0o700 });
      if (existsSync(`${o.dir}/${ifname}.conf`)) throw new Error(`${o.dir}/${ifname}.conf exists already; this device seems to have joined before`);
      const done = await enrol(code, { dir: o.dir, ifname });
      console.log(`joined as ${done.config.name}: ${done.conf} is up, agent settings in ${done.agentJson}`);
      if (o.service) {
        const unit = `/etc/systemd/system/wgp2p-agent-${done.config.name}.service`;
        writeFileSync(
          unit,
          `[Unit]\nDescription=wgp2p agent ${done.config.name}\nAfter=network-online.target wg-quick@${ifname}.service\n\n[Service]\nExecStart=${process.execPath} ${process.argv[1]} agent run --config ${done.agentJson}\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n`,
        );
        console.log(`installed ${unit}; start it with: systemctl enable --now wgp2p-agent-${done.config.name} (and wg-quick@${ifname} for the interface at boot)`);
        return;
      }
      const agentLog = createLogger('agent');
      keepRunning(agentLog);
      const agent = new Agent({ config: done.config, ifname, log: agentLog });
      await agent.start();
      const stop = () => void agent.stop().finally(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
