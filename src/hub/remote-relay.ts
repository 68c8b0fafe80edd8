import type { WebSocket } from 'ws';
import type { Logger } from '../core/log.js';
import { HEARTBEAT, heartbeat } from '../core/heartbeat.js';
import type { IpAddress } from '../core/net/address.js';
import { decode } from '../core/protocol.js';
import { relayToHubSchema, type HubToRelayWire, type RelayStats, type RelayToHub } from '../core/relay-protocol.js';
import type { RelaySideSpec } from '../relay/relay.js';
import type { RelayBackend, RelayPool } from './relay-pool.js';

/** An allocation request the relay did not answer within this long counts as failed (the pool tries the next relay). */
const ALLOCATE_TIMEOUT_MS = 3000;

/** A relay process registered over its tunnel (`wgp2p relay run`), as one of the pool's relays. */
export class RemoteRelay implements RelayBackend {
  private live = new Set<string>();
  private pending = new Map<string, { resolve: (p: { portA: number; portB: number }) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  private lastStats: RelayStats[] = [];

  constructor(
    readonly name: string,
    /** From its hello: checked there to be one or two relay addresses, at most one per family. */
    readonly addresses: readonly IpAddress[],
    private readonly ws: WebSocket,
    private readonly events: { latched(id: string, publicKey: string, endpoint: string): void; released(id: string): void },
  ) {}

  get allocationCount(): number {
    return this.live.size + this.pending.size;
  }

  private send(m: HubToRelayWire): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(m));
  }

  allocate(id: string, a: RelaySideSpec, b: RelaySideSpec): Promise<{ portA: number; portB: number }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`relay ${this.name} did not answer within ${ALLOCATE_TIMEOUT_MS} ms`));
      }, ALLOCATE_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      const wire = (s: RelaySideSpec) => ({ publicKey: s.publicKey, ip: s.ip.toString() });
      this.send({ type: 'allocate', id, a: wire(a), b: wire(b) });
    });
  }

  updateIp(id: string, publicKey: string, ip: IpAddress): void {
    this.send({ type: 'update-ip', id, publicKey, ip: ip.toString() });
  }

  release(id: string): void {
    this.live.delete(id);
    this.send({ type: 'release', id });
  }

  has(id: string): boolean {
    return this.live.has(id);
  }

  async stats(): Promise<RelayStats[]> {
    return this.lastStats;
  }

  /** A message from the relay, already validated. */
  onMessage(m: RelayToHub): void {
    switch (m.type) {
      case 'allocated':
      case 'allocate-failed': {
        const p = this.pending.get(m.id);
        if (!p) return;
        clearTimeout(p.timer);
        this.pending.delete(m.id);
        if (m.type === 'allocated') {
          this.live.add(m.id);
          p.resolve({ portA: m.portA, portB: m.portB });
        } else p.reject(new Error(`relay ${this.name}: ${m.error}`));
        return;
      }
      case 'latched':
        if (this.live.has(m.id)) this.events.latched(m.id, m.publicKey, m.endpoint.toString());
        return;
      case 'released':
        if (this.live.delete(m.id)) this.events.released(m.id);
        return;
      case 'stats':
        this.lastStats = m.allocations;
        return;
      case 'hello':
        return;
    }
  }

  /** The connection went away: nothing it allocated exists any more. */
  close(): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`relay ${this.name} disconnected`));
    }
    this.pending.clear();
    this.live.clear();
  }
}

/**
 * A relay connected over its tunnel: it joins the pool with its hello; when the connection goes,
 * its allocations are gone and the pool moves the pairs on it to another relay.
 */
export function acceptRelay(name: string, ws: WebSocket, pool: RelayPool, latched: (publicKey: string, endpoint: string) => void, log: Logger): void {
  let relay: RemoteRelay | undefined;
  ws.on('message', (data) => {
    let m: RelayToHub;
    try {
      m = decode(relayToHubSchema, data.toString(), `message from relay ${name}`);
    } catch (err) {
      log.warn({ relay: name, err: (err as Error).message }, 'malformed message ignored');
      return;
    }
    if (m.type === 'hello' && !relay) {
      relay = new RemoteRelay(name, m.addresses, ws, { latched: (_id, key, endpoint) => latched(key, endpoint), released: (id) => pool.released(id) });
      pool.add(relay);
      log.info({ relay: name, addresses: m.addresses.map(String), ports: [m.portMin, m.portMax] }, 'relay registered');
      return;
    }
    relay?.onMessage(m);
  });
  const gone = () => {
    if (!relay) return;
    relay.close();
    pool.remove(name);
    log.info({ relay: name }, 'relay gone');
    relay = undefined;
  };
  ws.on('close', gone);
  ws.on('error', gone);
  // A relay that died silently would keep its pairs on it until TCP gave up.
  heartbeat(ws, HEARTBEAT, () => log.info({ relay: name }, 'relay stopped answering pings: disconnected'));
}
