import { isIPv6 } from 'node:net';
import { parseCidr } from './ipv4.js';
import { isKey } from './wireguard/keys.js';

/** wg-quick configuration files: one [Interface], any number of [Peer] sections. */

export interface WgQuickInterface {
  privateKey: string;
  address: string[];
  listenPort?: number;
  dns?: string[];
  mtu?: number;
  table?: string;
  fwmark?: number;
  preUp: string[];
  postUp: string[];
  preDown: string[];
  postDown: string[];
  saveConfig?: boolean;
}

export interface WgQuickPeer {
  publicKey: string;
  presharedKey?: string;
  allowedIps: string[];
  endpoint?: string;
  persistentKeepalive?: number;
  comment?: string;
}

export interface WgQuickConfig {
  interface: WgQuickInterface;
  peers: WgQuickPeer[];
}

export class WgQuickError extends Error {
  override name = 'WgQuickError';
}

const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);

function isCidr(v: string): boolean {
  if (parseCidr(v)) return true;
  const [addr, len] = v.split('/');
  return isIPv6(addr) && len !== undefined && /^\d{1,3}$/.test(len) && Number(len) <= 128;
}

const ENDPOINT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

export function parseWgQuick(text: string, source = 'config'): WgQuickConfig {
  let iface: WgQuickInterface | undefined;
  const peers: WgQuickPeer[] = [];
  let section: 'interface' | 'peer' | undefined;
  let pendingComment: string | undefined;
  const lines = text.split(/\r?\n/);
  const fail = (n: number, msg: string): never => {
    throw new WgQuickError(`${source} line ${n}: ${msg}`);
  };
  lines.forEach((raw, i) => {
    const n = i + 1;
    const line = raw.trim();
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s*name:\s*(.+)$/.exec(line) ?? /^#\s*(.+)$/.exec(line);
      pendingComment = m?.[1].trim();
      return;
    }
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      const name = header[1].toLowerCase();
      if (name === 'interface') {
        if (iface) fail(n, 'a second [Interface] section; a config has exactly one');
        iface = { privateKey: '', address: [], preUp: [], postUp: [], preDown: [], postDown: [] };
        section = 'interface';
      } else if (name === 'peer') {
        peers.push({ publicKey: '', allowedIps: [], ...(pendingComment ? { comment: pendingComment } : {}) });
        section = 'peer';
      } else fail(n, `unknown section [${header[1]}]; use [Interface] or [Peer]`);
      pendingComment = undefined;
      return;
    }
    pendingComment = undefined;
    const eq = line.indexOf('=');
    if (eq < 0) fail(n, `"${line}" is not "Key = Value"`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    const k = key.toLowerCase();
    const port = (v: string, what: string) => {
      if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535) fail(n, `${what} "${v}" must be a port from 1 to 65535`);
      return Number(v);
    };
    if (section === 'interface' && iface) {
      switch (k) {
        case 'privatekey':
          if (!isKey(value)) fail(n, `[Interface] PrivateKey is not a WireGuard key (44 characters of base64)`);
          iface.privateKey = value;
          break;
        case 'address':
          for (const a of list(value)) if (!isCidr(a) && !isCidr(`${a}/32`)) fail(n, `[Interface] Address "${a}" is not an address with prefix, like 10.0.0.2/24`);
          iface.address.push(...list(value));
          break;
        case 'listenport':
          iface.listenPort = port(value, '[Interface] ListenPort');
          break;
        case 'dns':
          iface.dns = [...(iface.dns ?? []), ...list(value)];
          break;
        case 'mtu':
          if (!/^\d+$/.test(value)) fail(n, `[Interface] MTU "${value}" must be a number`);
          iface.mtu = Number(value);
          break;
        case 'table':
          iface.table = value;
          break;
        case 'fwmark':
          iface.fwmark = Number(value);
          break;
        case 'preup':
          iface.preUp.push(value);
          break;
        case 'postup':
          iface.postUp.push(value);
          break;
        case 'predown':
          iface.preDown.push(value);
          break;
        case 'postdown':
          iface.postDown.push(value);
          break;
        case 'saveconfig':
          iface.saveConfig = value === 'true';
          break;
        default:
          fail(n, `unknown key "${key}" in [Interface]`);
      }
    } else if (section === 'peer') {
      const peer = peers[peers.length - 1];
      switch (k) {
        case 'publickey':
          if (!isKey(value)) fail(n, `[Peer] PublicKey "${value}" is not a WireGuard key (44 characters of base64)`);
          peer.publicKey = value;
          break;
        case 'presharedkey':
          if (!isKey(value)) fail(n, `[Peer] PresharedKey is not a WireGuard key (44 characters of base64)`);
          peer.presharedKey = value;
          break;
        case 'allowedips':
          for (const a of list(value)) if (!isCidr(a)) fail(n, `[Peer] AllowedIPs "${a}" is not a CIDR like 10.0.0.2/32`);
          peer.allowedIps.push(...list(value));
          break;
        case 'endpoint': {
          const m = ENDPOINT.exec(value);
          if (!m) fail(n, `[Peer] Endpoint "${value}" must be HOST:PORT`);
          port(m![1], '[Peer] Endpoint port');
          peer.endpoint = value;
          break;
        }
        case 'persistentkeepalive':
          if (value === 'off') peer.persistentKeepalive = 0;
          else if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) fail(n, `[Peer] PersistentKeepalive "${value}" must be 0-65535 seconds or off`);
          else peer.persistentKeepalive = Number(value);
          break;
        default:
          fail(n, `unknown key "${key}" in [Peer]`);
      }
    } else fail(n, `"${key}" is outside any section; start with [Interface]`);
  });
  if (!iface) throw new WgQuickError(`${source}: no [Interface] section`);
  if (!iface.privateKey) throw new WgQuickError(`${source}: [Interface] has no PrivateKey`);
  peers.forEach((p, i) => {
    if (!p.publicKey) throw new WgQuickError(`${source}: [Peer] number ${i + 1} has no PublicKey`);
  });
  return { interface: iface, peers };
}

export function formatWgQuick(cfg: WgQuickConfig): string {
  const i = cfg.interface;
  const out: string[] = ['[Interface]', `PrivateKey = ${i.privateKey}`];
  if (i.address.length) out.push(`Address = ${i.address.join(', ')}`);
  if (i.listenPort !== undefined) out.push(`ListenPort = ${i.listenPort}`);
  if (i.dns?.length) out.push(`DNS = ${i.dns.join(', ')}`);
  if (i.mtu !== undefined) out.push(`MTU = ${i.mtu}`);
  if (i.table !== undefined) out.push(`Table = ${i.table}`);
  if (i.fwmark !== undefined) out.push(`FwMark = ${i.fwmark}`);
  for (const [key, vals] of [['PreUp', i.preUp], ['PostUp', i.postUp], ['PreDown', i.preDown], ['PostDown', i.postDown]] as const) {
    for (const v of vals) out.push(`${key} = ${v}`);
  }
  if (i.saveConfig !== undefined) out.push(`SaveConfig = ${i.saveConfig}`);
  for (const p of cfg.peers) {
    out.push('');
    if (p.comment) out.push(`# ${p.comment}`);
    out.push('[Peer]', `PublicKey = ${p.publicKey}`);
    if (p.presharedKey) out.push(`PresharedKey = ${p.presharedKey}`);
    if (p.allowedIps.length) out.push(`AllowedIPs = ${p.allowedIps.join(', ')}`);
    if (p.endpoint) out.push(`Endpoint = ${p.endpoint}`);
    if (p.persistentKeepalive !== undefined) out.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return out.join('\n') + '\n';
}
