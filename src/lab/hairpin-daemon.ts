/**
 * Runs inside a lab router's namespace and gives it RFC 4787 hairpinning for dynamic mappings,
 * which Linux NAT does not do by itself: for each new outbound UDP mapping (inside host:port ->
 * WAN:port) it adds WAN-port -> host:port to the nftables map that the prerouting rule uses, and
 * removes it when conntrack destroys the entry.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { run } from '../core/exec.js';
import { IpAddress } from '../core/net/address.js';
import { Cidr } from '../core/net/cidr.js';
import { HAIRPIN_MAP, NFT_TABLE } from './nat-rules.js';

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) throw new Error(`hairpin-daemon: --${name} is required`);
  return v;
}

// Both come from the lab builder; a bad one is a bug, and the parser's message says which.
const wan = IpAddress.parse(arg('wan'));
const lan = Cidr.parse(arg('lan'));

/** External port -> "host . port" currently in the map. */
const mapped = new Map<number, string>();

// conntrack -E line: "[NEW] udp 17 30 src=A dst=B sport=1 dport=2 [UNREPLIED] src=B dst=W sport=2 dport=3"
const EVENT = /^\s*\[(NEW|DESTROY)\]\s+udp\s+\d+\s+(?:\d+\s+)?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+).*?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)/;

async function nft(cmd: string): Promise<void> {
  await run('nft', [cmd], { allowFail: true });
}

async function onEvent(line: string): Promise<void> {
  const m = EVENT.exec(line);
  if (!m) return;
  const [, kind, src, , sport, , , rdst, , rdport] = m;
  const srcIp = IpAddress.tryParse(src);
  if (srcIp === undefined || !lan.contains(srcIp) || !wan.equals(IpAddress.tryParse(rdst))) return;
  const ext = Number(rdport);
  const target = `${src} . ${sport}`;
  if (kind === 'NEW' && !mapped.has(ext)) {
    mapped.set(ext, target);
    await nft(`add element inet ${NFT_TABLE} ${HAIRPIN_MAP} { ${ext} : ${target} }`);
  } else if (kind === 'DESTROY' && mapped.get(ext) === target) {
    mapped.delete(ext);
    await nft(`delete element inet ${NFT_TABLE} ${HAIRPIN_MAP} { ${ext} }`);
  }
}

const child = spawn('conntrack', ['-E', '-p', 'udp', '-e', 'NEW,DESTROY'], { stdio: ['ignore', 'pipe', 'inherit'] });
let queue = Promise.resolve();
createInterface({ input: child.stdout }).on('line', (line) => {
  queue = queue.then(() => onEvent(line)).catch((err: unknown) => console.error(String(err)));
});
child.on('exit', (code) => process.exit(code ?? 1));
const stop = () => {
  child.kill('SIGTERM');
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
