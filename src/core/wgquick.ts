import { IpAddress, type AddressError } from './net/address.js';
import { Prefixed } from './net/cidr.js';
import { EndpointError, HostPort } from './net/endpoint.js';
import { isKey } from './wireguard/keys.js';

/** wg-quick configuration files: one [Interface] section, any number of [Peer] sections. */

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

const INTERFACE_KEYS = ['PrivateKey', 'Address', 'ListenPort', 'DNS', 'MTU', 'Table', 'FwMark', 'PreUp', 'PostUp', 'PreDown', 'PostDown', 'SaveConfig'];
const PEER_KEYS = ['PublicKey', 'PresharedKey', 'AllowedIPs', 'Endpoint', 'PersistentKeepalive'];
const KEY_HINT = '44 characters of base64';
const NAME_COMMENT = /^name:\s*(.*)$/i;

const list = (value: string): string[] =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

/**
 * Why an Address or AllowedIPs item is not an address of either family with an optional prefix
 * (wg and wg-quick take a bare address as a single host, /32 or /128), or undefined when it is.
 * Host bits may be set: "10.0.0.2/24" is how an Address line is written.
 */
function cidrProblem(text: string): string | undefined {
  try {
    if (text.includes('/')) Prefixed.parse(text);
    else IpAddress.parse(text);
    return undefined;
  } catch (err) {
    return (err as AddressError).message;
  }
}

function isPort(text: string): boolean {
  return /^[1-9]\d{0,4}$/.test(text) && Number(text) <= 65535;
}

/** Why an endpoint is not "host:port" or "[v6]:port" (host an address of either family or a DNS name), or undefined when it is. */
function endpointProblem(text: string): string | undefined {
  try {
    HostPort.parse(text);
    return undefined;
  } catch (err) {
    const p = err instanceof EndpointError ? err.problem : undefined;
    switch (p?.kind) {
      case 'empty':
        return 'is empty; write HOST:PORT, e.g. hub.example.com:51820';
      case 'no-port':
        return 'has no port; write HOST:PORT, e.g. hub.example.com:51820';
      case 'port':
        return `port "${p.port}" must be from 1 to 65535`;
      case 'unbracketed-ipv6':
        return 'looks like an IPv6 address; put it in brackets, e.g. [2001:db8::1]:51820';
      case 'bracket-syntax':
        return 'must be [IPV6]:PORT when it starts with "[", e.g. [2001:db8::1]:51820';
      case 'bracketed-not-ipv6':
        return `"${p.host}" in brackets is not an IPv6 address`;
      case 'address':
        return p.reason;
      case 'host':
        return `host "${p.host}" is neither an IP address nor a DNS name`;
      default:
        return (err as Error).message;
    }
  }
}

/**
 * The name in a "[Name]" header line (already trimmed), or undefined when the line is not one.
 * Plain string operations, not a regex: the pattern /^\[\s*([^\]]*?)\s*\]$/ backtracked
 * cubically, and "[" followed by 5,000 spaces and any other character did not finish.
 */
/** What a message echoes of a line: enough to find it, not the 128 KiB a broken file may hold. */
function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function sectionName(line: string): string | undefined {
  if (!line.startsWith('[') || !line.endsWith(']') || line.length < 2) return undefined;
  const inner = line.slice(1, -1);
  return inner.includes(']') ? undefined : inner.trim();
}

type Section = { kind: 'interface'; line: number; seen: Map<string, number> } | { kind: 'peer'; line: number; seen: Map<string, number>; peer: WgQuickPeer };

export function parseWgQuick(text: string, source = 'config'): WgQuickConfig {
  function fail(line: number, message: string): never {
    throw new WgQuickError(`${source} line ${line}: ${message}`);
  }

  let iface: WgQuickInterface | undefined;
  let ifaceLine = 0;
  const peers: { peer: WgQuickPeer; line: number }[] = [];
  let section: Section | undefined;
  // Only a comment on the line right above [Peer] names that peer; one further up may be about anything.
  let commentAbove: string | undefined;

  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n|\r/);
  for (const [index, raw] of lines.entries()) {
    const n = index + 1;
    const trimmed = raw.trim();
    const previousComment = commentAbove;
    commentAbove = undefined;

    if (trimmed.startsWith('#')) {
      const body = trimmed.slice(1).trim();
      const named = NAME_COMMENT.exec(body);
      const text = named ? named[1].trim() : body;
      if (section?.kind === 'peer' && named && text !== '' && section.peer.comment === undefined) section.peer.comment = text;
      commentAbove = text;
      continue;
    }
    // wg-quick and wg both drop everything from "#" on, so "PostUp = x # note" runs "x".
    const line = trimmed.split('#')[0].trim();
    if (line === '') continue;

    const header = sectionName(line);
    if (header !== undefined) {
      const name = header.toLowerCase();
      if (name === 'interface') {
        if (iface) fail(n, `a second [Interface] section (the first is on line ${ifaceLine}); a config has exactly one, so merge them`);
        iface = { privateKey: '', address: [], preUp: [], postUp: [], preDown: [], postDown: [] };
        ifaceLine = n;
        section = { kind: 'interface', line: n, seen: new Map() };
      } else if (name === 'peer') {
        const peer: WgQuickPeer = { publicKey: '', allowedIps: [] };
        if (previousComment) peer.comment = previousComment;
        peers.push({ peer, line: n });
        section = { kind: 'peer', line: n, seen: new Map(), peer };
      } else {
        fail(n, `unknown section [${header}]; wg-quick knows only [Interface] and [Peer]`);
      }
      continue;
    }

    const eq = line.indexOf('=');
    if (eq < 0) fail(n, `"${clip(line)}" is neither a [Section] header nor "Key = Value"`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key === '') fail(n, `"${clip(line)}" has no key before "="`);
    if (!section) fail(n, `${key} is outside any section; put it under [Interface] or [Peer]`);

    const where = section.kind === 'interface' ? '[Interface]' : '[Peer]';
    const known = section.kind === 'interface' ? INTERFACE_KEYS : PEER_KEYS;
    // The longest key is 19 characters: a longer one is unknown without lowering 128 KiB of it per key.
    const lower = key.length <= 32 ? key.toLowerCase() : undefined;
    const canonical = lower === undefined ? undefined : known.find((k) => k.toLowerCase() === lower);
    if (!canonical) {
      const other = section.kind === 'interface' ? PEER_KEYS : INTERFACE_KEYS;
      const elsewhere = lower === undefined ? undefined : other.find((k) => k.toLowerCase() === lower);
      if (elsewhere) fail(n, `${where} has no key ${key}; it belongs under ${section.kind === 'interface' ? '[Peer]' : '[Interface]'}`);
      // A bare WireGuard key on a line of its own splits at its trailing "=": never echo it, it may be a private key.
      const shown = /^[A-Za-z0-9+/]{40,}$/.test(key) ? 'that looks like a bare key (not shown)' : clip(key);
      fail(n, `unknown key ${shown} in ${where}; the keys there are ${known.join(', ')}`);
    }
    const label = `${where} ${canonical}`;

    const accumulates = /^(Address|DNS|AllowedIPs|PreUp|PostUp|PreDown|PostDown)$/.test(canonical);
    const earlier = section.seen.get(canonical);
    // wg would silently keep the last one; a second PublicKey usually means a missing [Peer] line.
    if (earlier !== undefined && !accumulates) fail(n, `${label} is set twice (also on line ${earlier}); keep one`);
    section.seen.set(canonical, n);

    const required = (what: string): void => {
      if (value === '') fail(n, `${label} is empty; give ${what}`);
    };
    const cidrs = (example: string): string[] => {
      const items = list(value);
      for (const item of items) {
        const problem = cidrProblem(item);
        if (problem) fail(n, `${label} "${item}" is not an IPv4 or IPv6 CIDR like ${example} (${problem})`);
      }
      return items;
    };

    if (section.kind === 'interface' && iface) {
      switch (canonical) {
        case 'PrivateKey':
          // The value is a secret; keep it out of error messages and logs.
          if (!isKey(value)) fail(n, `${label} is not a WireGuard key (${KEY_HINT}, as printed by wg genkey)`);
          iface.privateKey = value;
          break;
        case 'Address':
          iface.address.push(...cidrs('10.0.0.2/24 or fd00::2/64'));
          break;
        case 'ListenPort':
          if (!isPort(value)) fail(n, `${label} "${value}" is not a port; use a number from 1 to 65535`);
          iface.listenPort = Number(value);
          break;
        case 'DNS': {
          const servers = list(value);
          // Appended in place: copying the list on every DNS line made 12,000 of them take 0.6 s (bench/fuzz.ts).
          if (servers.length > 0) (iface.dns ??= []).push(...servers);
          break;
        }
        case 'MTU':
          if (!/^[1-9]\d{0,4}$/.test(value) || Number(value) < 68 || Number(value) > 65535) fail(n, `${label} "${value}" must be a number from 68 to 65535, e.g. 1420`);
          iface.mtu = Number(value);
          break;
        case 'Table':
          required('off, auto, or a routing table number or name');
          if (/\s/.test(value)) fail(n, `${label} "${value}" must be off, auto, or one routing table number or name`);
          iface.table = value;
          break;
        case 'FwMark': {
          // wg accepts decimal, 0x-hex, or "off" (which is mark 0).
          const mark = value.toLowerCase() === 'off' ? 0 : /^(0x[0-9a-f]{1,8}|\d{1,10})$/i.test(value) ? Number(value) : NaN;
          if (!(mark >= 0 && mark <= 0xffffffff)) fail(n, `${label} "${value}" must be off or a 32-bit number, e.g. 51820 or 0xca6c`);
          iface.fwmark = mark;
          break;
        }
        case 'PreUp':
          required('a shell command');
          iface.preUp.push(value);
          break;
        case 'PostUp':
          required('a shell command');
          iface.postUp.push(value);
          break;
        case 'PreDown':
          required('a shell command');
          iface.preDown.push(value);
          break;
        case 'PostDown':
          required('a shell command');
          iface.postDown.push(value);
          break;
        case 'SaveConfig': {
          const v = value.toLowerCase();
          if (v !== 'true' && v !== 'false') fail(n, `${label} "${value}" must be true or false`);
          iface.saveConfig = v === 'true';
          break;
        }
      }
    } else if (section.kind === 'peer') {
      const peer = section.peer;
      switch (canonical) {
        case 'PublicKey':
          if (!isKey(value)) fail(n, `${label} "${value}" is not a WireGuard key (${KEY_HINT}, as printed by wg pubkey)`);
          peer.publicKey = value;
          break;
        case 'PresharedKey':
          if (!isKey(value)) fail(n, `${label} is not a WireGuard key (${KEY_HINT}, as printed by wg genpsk)`);
          peer.presharedKey = value;
          break;
        case 'AllowedIPs':
          peer.allowedIps.push(...cidrs('10.0.0.2/32 or fd00::/64'));
          break;
        case 'Endpoint': {
          const problem = endpointProblem(value);
          if (problem) fail(n, `${label} "${value}": ${problem}`);
          peer.endpoint = value;
          break;
        }
        case 'PersistentKeepalive': {
          const off = value.toLowerCase() === 'off';
          if (!off && (!/^(0|[1-9]\d{0,4})$/.test(value) || Number(value) > 65535)) fail(n, `${label} "${value}" must be off or seconds from 0 to 65535, e.g. 25`);
          peer.persistentKeepalive = off ? 0 : Number(value);
          break;
        }
      }
    }
  }

  if (!iface) throw new WgQuickError(`${source}: no [Interface] section; a config starts with [Interface] and its PrivateKey`);
  if (!iface.privateKey) fail(ifaceLine, '[Interface] has no PrivateKey; add "PrivateKey = <output of wg genkey>"');
  for (const { peer, line } of peers) {
    if (!peer.publicKey) fail(line, `[Peer] has no PublicKey; add "PublicKey = <that peer's key, from wg pubkey>"`);
  }
  return { interface: iface, peers: peers.map((p) => p.peer) };
}

export function formatWgQuick(cfg: WgQuickConfig): string {
  const out: string[] = [];
  // wg-quick cuts a line at "#" and cannot continue one, so such a value would not read back the same.
  const put = (key: string, value: string | number | boolean): void => {
    const text = String(value);
    if (/[#\r\n]/.test(text)) throw new WgQuickError(`${key} "${text}" cannot be written to a wg-quick file: it contains "#" or a line break`);
    out.push(`${key} = ${text}`);
  };
  const i = cfg.interface;
  out.push('[Interface]');
  put('PrivateKey', i.privateKey);
  if (i.address.length > 0) put('Address', i.address.join(', '));
  if (i.listenPort !== undefined) put('ListenPort', i.listenPort);
  if (i.dns !== undefined && i.dns.length > 0) put('DNS', i.dns.join(', '));
  if (i.mtu !== undefined) put('MTU', i.mtu);
  if (i.table !== undefined) put('Table', i.table);
  if (i.fwmark !== undefined) put('FwMark', i.fwmark);
  for (const v of i.preUp) put('PreUp', v);
  for (const v of i.postUp) put('PostUp', v);
  for (const v of i.preDown) put('PreDown', v);
  for (const v of i.postDown) put('PostDown', v);
  if (i.saveConfig !== undefined) put('SaveConfig', i.saveConfig);

  for (const p of cfg.peers) {
    out.push('');
    if (p.comment) {
      if (/[\r\n]/.test(p.comment)) throw new WgQuickError(`peer comment "${p.comment}" cannot span lines`);
      // A comment that itself starts with "name:" would otherwise lose that prefix when read back.
      out.push(NAME_COMMENT.test(p.comment) ? `# name: ${p.comment}` : `# ${p.comment}`);
    }
    out.push('[Peer]');
    put('PublicKey', p.publicKey);
    if (p.presharedKey !== undefined) put('PresharedKey', p.presharedKey);
    if (p.allowedIps.length > 0) put('AllowedIPs', p.allowedIps.join(', '));
    if (p.endpoint !== undefined) put('Endpoint', p.endpoint);
    if (p.persistentKeepalive !== undefined) put('PersistentKeepalive', p.persistentKeepalive);
  }
  return out.join('\n') + '\n';
}
