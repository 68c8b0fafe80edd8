/**
 * A relay with fixed allocations, for lab tests and benchmarks (the hub will allocate for real):
 *   node relay-host.js --address IP [--address IP6] --ports MIN-MAX [--allocate ID,AKEY,AIP,BKEY,BIP]...
 *                      [--allocate-file FILE] [--userspace | --kernel-mode nat|ingress] [--quiet]
 * FILE holds one ID,AKEY,AIP,BKEY,BIP per line (a thousand allocations do not fit in argv nicely).
 * Ports are handed out from MIN upwards, so the first allocation gets MIN (side A) and MIN+1.
 * With an address of each family, each side is served on its node's family (a bridged pair when
 * AIP and BIP differ in family); the kernel path is set up per family.
 * AIP and BIP may be IPv6: the fields are split at commas, never at colons.
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

function opts(name: string): string[] {
  const out: string[] = [];
  for (let i = process.argv.indexOf(`--${name}`); i >= 0; i = process.argv.indexOf(`--${name}`, i + 1)) out.push(process.argv[i + 1]);
  return out;
}

const addresses = opts('address').map((a) => IpAddress.parse(a));
const [min, max] = (opt('ports') ?? '').split('-').map(Number);
if (addresses.length === 0 || !min || !max) throw new Error('relay-host: --address (once per family) and --ports MIN-MAX are required');
const modeText = opt('kernel-mode');
if (modeText !== undefined && modeText !== 'nat' && modeText !== 'ingress') throw new Error('relay-host: --kernel-mode is nat or ingress');
const mode: KernelMode | undefined = modeText;
const { kernels, userspace } = process.argv.includes('--userspace') ? { kernels: [], userspace: addresses.map((address) => ({ address, reason: '--userspace' })) } : await KernelPath.forAddresses(addresses, { mode, port: min });
const relay = new Relay({
  addresses,
  portMin: min,
  portMax: max,
  kernel: kernels,
  onError: (err) => console.error(String(err)),
  onLatched: (id, publicKey, endpoint) => console.log(JSON.stringify({ event: 'latched', id, publicKey, endpoint })),
  onReleased: (id, reason) => console.log(JSON.stringify({ event: 'released', id, reason })),
});
const specs = opts('allocate');
const file = opt('allocate-file');
if (file) specs.push(...readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== ''));
for (const spec of specs) {
  const [id, aKey, aIp, bKey, bIp] = spec.split(',');
  await relay.allocate(id, { publicKey: aKey, ip: aIp }, { publicKey: bKey, ip: bIp });
}
// kernel/kernelMode/userspaceBecause describe the first family (IPv4 where there is one), as
// readers from before IPv6 expect; kernels and userspace give every family.
const first = relay.addresses[0];
const firstKernel = kernels.find((k) => k.family === first.family);
console.log(
  JSON.stringify({
    ready: true,
    kernel: firstKernel !== undefined,
    kernelMode: firstKernel?.mode ?? null,
    userspaceBecause: userspace.find((u) => u.address.family === first.family)?.reason ?? null,
    kernels: Object.fromEntries(kernels.map((k) => [`ipv${k.family}`, k.mode])),
    userspace: Object.fromEntries(userspace.map((u) => [`ipv${u.address.family}`, u.reason])),
    allocations: specs.length,
  }),
);
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
