import { createRequire } from 'node:module';

/**
 * A generic netlink socket, from the `netlink` package (an N-API addon: its prebuilt binaries for
 * linux x64, arm64, arm and ia32 ship inside the npm package, so installing it neither compiles
 * nor downloads, and one binary serves every Node version). Node has no AF_NETLINK socket of its
 * own, and the alternatives cost more per read: `wg show dump` forks a process per poll (≈ 2-3 ms
 * of CPU each), and a helper process would be a second program to build and ship. Only the raw
 * socket is used: the messages are built and read by this project's codecs (core/netlink/,
 * core/wireguard/netlink-codec.ts), which are tested against the kernel's layouts.
 *
 * The package is an optional dependency: where it is missing or its binary does not load (a libc
 * or CPU it has no build for), openTransport says why and the caller falls back to wg(8).
 */

export interface NetlinkTransport {
  send(datagram: Buffer): void;
  close(): void;
}

export interface TransportEvents {
  onDatagram(datagram: Buffer): void;
  onError(err: Error): void;
}

const NETLINK_GENERIC = 16;

/** The part of the package's RawNetlinkSocket used here, checked when it loads. */
interface RawSocket {
  send(msg: Buffer, options: { port?: number } | undefined, callback: (err?: Error) => void): void;
  on(event: 'message', listener: (msg: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'truncatedMessage', listener: (msg: Buffer) => void): unknown;
  close(): void;
  unref(): void;
}
type RawSocketClass = new (protocol: number, options?: { recvBufferSize?: number }) => RawSocket;

let loaded: RawSocketClass | string | undefined;

function load(): RawSocketClass | string {
  if (loaded !== undefined) return loaded;
  try {
    const mod: unknown = createRequire(import.meta.url)('netlink');
    const ctor = typeof mod === 'object' && mod !== null && 'RawNetlinkSocket' in mod ? mod.RawNetlinkSocket : undefined;
    loaded = typeof ctor === 'function' ? (ctor as RawSocketClass) : 'the netlink package has no RawNetlinkSocket (an incompatible version?)';
  } catch (err) {
    loaded = `the netlink package did not load (${(err as Error).message.split('\n')[0]}); run npm install, or wgp2p uses wg(8)`;
  }
  return loaded;
}

/** Why netlink sockets are not available here, or undefined if they are. */
export function netlinkUnavailable(): string | undefined {
  const l = load();
  return typeof l === 'string' ? l : undefined;
}

export function openTransport(events: TransportEvents): NetlinkTransport {
  const Raw = load();
  if (typeof Raw === 'string') throw new Error(Raw);
  // 1 MiB: a dump is paced by our reads, but a reply burst must not overflow the default 200 KB.
  const sock = new Raw(NETLINK_GENERIC, { recvBufferSize: 1 << 20 });
  // A watch that is stopped must not keep the process alive because of an idle socket.
  sock.unref();
  sock.on('message', (msg) => events.onDatagram(msg));
  sock.on('truncatedMessage', () => events.onError(new Error('a netlink reply was truncated')));
  sock.on('error', (err) => events.onError(err));
  return {
    send(datagram) {
      sock.send(datagram, { port: 0 }, (err) => {
        if (err) events.onError(err);
      });
    },
    close() {
      sock.close();
    },
  };
}
