/**
 * A relay with fixed allocations, for lab tests and benchmarks (the hub will allocate for real):
 *   node relay-host.js --address IP --ports MIN-MAX [--allocate ID,AKEY,AIP,BKEY,BIP]...
 *                      [--allocate-file FILE] [--userspace | --kernel-mode nat|ingress] [--quiet]
 * FILE holds one ID,AKEY,AIP,BKEY,BIP per line (a thousand allocations do not fit in argv nicely).
 * Ports are handed out from MIN upwards, so the first allocation gets MIN (side A) and MIN+1.
 * Prints {"ready":…} once, an {"event":…} line per onLatched/onReleased, and the allocations'
 * counters as one JSON array every 250 ms when they changed (not with --quiet).
 */
import { readFileSync } from 'node:fs';
import { IpAddress } from '../core/net/address.js';
import { KernelPath, type KernelMode } from '../relay/kernel-path.js';
import { Relay } from '../relay/relay.js';

function opt(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const addressText = opt('address');
const [min, max] = (opt('ports') ?? '').split('-').map(Number);
if (!addressText || !min || !max) throw new Error('relay-host: --address and --ports MIN-MAX are required');
const address = IpAddress.parse(addressText);
const mode = opt('kernel-mode') as KernelMode | undefined;
if (mode !== undefined && mode !== 'nat' && mode !== 'ingress') throw new Error('relay-host: --kernel-mode is nat or ingress');
const { kernel, reason } = process.argv.includes('--userspace') ? { kernel: undefined, reason: '--userspace' } : await KernelPath.tryCreate(address, { mode });
const relay = new Relay({
  address,
  portMin: min,
  portMax: max,
  kernel,
  onError: (err) => console.error(String(err)),
  onLatched: (id, publicKey, endpoint) => console.log(JSON.stringify({ event: 'latched', id, publicKey, endpoint })),
  onReleased: (id, reason) => console.log(JSON.stringify({ event: 'released', id, reason })),
});
const specs: string[] = [];
for (let i = process.argv.indexOf('--allocate'); i >= 0; i = process.argv.indexOf('--allocate', i + 1)) specs.push(process.argv[i + 1]);
const file = opt('allocate-file');
if (file) specs.push(...readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== ''));
for (const spec of specs) {
  const [id, aKey, aIp, bKey, bIp] = spec.split(',');
  await relay.allocate(id, { publicKey: aKey, ip: aIp }, { publicKey: bKey, ip: bIp });
}
console.log(JSON.stringify({ ready: true, kernel: kernel !== undefined, kernelMode: kernel?.mode ?? null, userspaceBecause: reason ?? null, allocations: specs.length }));
// Run until signalled even with no allocation (the relay's own timer does not hold the process).
setInterval(() => undefined, 1 << 30);
if (!process.argv.includes('--quiet')) {
  let last = '';
  setInterval(() => {
    void relay.stats().then((s) => {
      const line = JSON.stringify(s.map(({ idleMs: _idle, ...rest }) => rest));
      if (line !== last) console.log((last = line));
    });
  }, 250);
}
const stop = () => void relay.close().finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
