/**
 * Run by the guest's command script before the command, when the caller set no
 * WGP2P_LAB_TIME_SCALE: times the same process starts the host timed before booting, and prints
 * both scales on stdout, "DEADLINE WINDOW" (the script exports them), and what it measured on
 * stderr (back to the caller).
 * Exits 1 without output when it cannot tell; the script then keeps the fallback.
 */
import { scalesFromStartTimes, startTimesFromEnv } from './scale.js';
import { measureStartTimes } from './start-times.js';

const host = startTimesFromEnv(process.env);
if (!host) {
  process.stderr.write('lab vm: no host start times; the time scale stays at its fallback\n');
  process.exit(1);
}
try {
  const guest = await measureStartTimes(1);
  const scale = scalesFromStartTimes(host, guest);
  if (scale === undefined) throw new Error('unusable start times');
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  process.stderr.write(
    `lab vm: time scale ${scale.deadline} for deadlines, ${scale.window} for windows (node -e 0 ${s(guest.nodeMs)} vs ${s(host.nodeMs)} on the host, wgp2p hub --help ${s(guest.cliMs)} vs ${s(host.cliMs)}, a JS loop ${s(guest.loopMs)} vs ${s(host.loopMs)})\n`,
  );
  process.stdout.write(`${scale.deadline} ${scale.window}\n`);
} catch (err) {
  process.stderr.write(`lab vm: could not time process starts in the guest (${(err as Error).message}); the time scale stays at its fallback\n`);
  process.exit(1);
}
