#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { pendingTeardown } from '../lab/lab.js';
import { registerAgent } from './agent.js';
import { registerHub } from './hub.js';
import { registerJoin } from './join.js';
import { registerLab } from './lab.js';
import { registerNode } from './node.js';
import { registerRelay } from './relay.js';
import { registerStatus } from './status.js';

const program = new Command();
program
  .name('wgp2p')
  .description('direct WireGuard tunnels through NATs, with a relay when direct is impossible')
  .version('0.1.0')
  .showHelpAfterError()
  .exitOverride();

registerHub(program);
registerNode(program);
registerAgent(program);
registerJoin(program);
registerRelay(program);
registerStatus(program);
registerLab(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  // Interrupted: the teardown handler exits with the signal's code once the lab is gone.
  const pending = pendingTeardown();
  if (pending) await pending;
  console.error(`wgp2p: ${(err as Error).message}`);
  process.exit(1);
}
