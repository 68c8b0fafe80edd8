import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import pino from 'pino';
import { IpAddress } from '../../src/core/net/address.js';
import { Endpoint, HostPort } from '../../src/core/net/endpoint.js';
import { connectStream, type StreamTransport } from '../../src/core/stream/connect.js';
import { encodeControl, encodeData, FrameDecoder, type Frame } from '../../src/core/stream/framing.js';
import { STREAM_VERSION, type RelayStreamMessage, type ShimMessage } from '../../src/core/stream/messages.js';
import type { Pipe } from '../../src/core/stream/pipe.js';
import { generateKeyPair } from '../../src/core/wireguard/keys.js';

/** Shared by the stream tests of the relay and the agent's shim: nodes, UDP peers, a raw stream client. */

export const silent = pino({ level: 'silent' });
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(done: () => boolean, what: string, ms = 3000): Promise<void> {
  for (const end = performance.now() + ms; performance.now() < end; await sleep(10)) if (done()) return;
  assert.fail(`never happened: ${what}`);
}

export interface Node {
  publicKey: string;
  token: string;
}

export function node(): Node {
  return { publicKey: generateKeyPair().publicKey, token: randomBytes(32).toString('base64url') };
}

export type Peer = Socket & { got: Buffer[]; from: { address: string; port: number }[]; port: number; endpoint: Endpoint };

export function udpPeer(address = '127.0.0.1'): Promise<Peer> {
  return new Promise((resolve) => {
    const s = createSocket(IpAddress.parse(address).family === 6 ? 'udp6' : 'udp4') as Peer;
    s.got = [];
    s.from = [];
    s.on('message', (m, r) => {
      s.got.push(m);
      s.from.push({ address: r.address, port: r.port });
    });
    s.bind(0, address, () => {
      s.port = s.address().port;
      s.endpoint = Endpoint.of(IpAddress.parse(address), s.port);
      resolve(s);
    });
  });
}

/** A stream client that speaks the protocol by hand, to test what the relay does with anything. */
export class RawClient {
  frames: Frame[] = [];
  ended = false;
  private readonly decoder = new FrameDecoder();

  constructor(readonly pipe: Pipe) {
    pipe.start(
      (chunk) => void this.decoder.push(chunk, (f) => this.frames.push(f.type === 'data' ? { ...f, datagram: Buffer.from(f.datagram) } : f)),
      () => (this.ended = true),
    );
  }

  static async connect(port: number, pin: string, transport: StreamTransport = 'tls'): Promise<RawClient> {
    return new RawClient(await connectStream({ relay: HostPort.parse(`127.0.0.1:${port}`), trust: { pin }, transport }));
  }

  send(m: ShimMessage): void {
    this.pipe.write(encodeControl(JSON.stringify(m)));
  }

  hello(n: Node): void {
    this.send({ type: 'hello', v: STREAM_VERSION, publicKey: n.publicKey, token: n.token });
  }

  data(channel: number, datagram: Buffer): void {
    this.pipe.write(encodeData(channel, datagram));
  }

  controls(): RelayStreamMessage[] {
    return this.frames.flatMap((f) => (f.type === 'control' ? [JSON.parse(f.text) as RelayStreamMessage] : []));
  }

  datagrams(channel: number): Buffer[] {
    return this.frames.flatMap((f) => (f.type === 'data' && f.channel === channel ? [f.datagram] : []));
  }

  async waitControl(type: RelayStreamMessage['type']): Promise<RelayStreamMessage> {
    await until(() => this.controls().some((m) => m.type === type), `a "${type}" from the relay`);
    return this.controls().find((m) => m.type === type)!;
  }

  close(): void {
    this.pipe.destroy();
  }
}
