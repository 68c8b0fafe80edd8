import type { Gateway } from '@achingbrain/nat-port-mapper';
import type { IpAddress } from '../../core/net/address.js';
import { Endpoint } from '../../core/net/endpoint.js';
import { PROTOCOL_NAMES, type PortMappingFact, type PortMappingProtocol } from '../../core/doctor/report.js';
import { StunSocket } from '../../core/stun/client.js';
import { pcpAnnounce } from './pcp-announce.js';

/**
 * Which port-mapping protocols the router answers, and whether a mapping really forwards: a test
 * mapping of a fresh socket's port, then the hub's STUN responder sends to the external port it
 * says (RESPONSE-PORT), and the datagram must arrive. A router can map and not forward: under
 * CGNAT its "external" address is the carrier's network, which nothing on the internet reaches.
 *
 * One small interface per protocol, so the agent's own port-mapping clients can stand in for these.
 */
export interface PortMapper {
  protocol: PortMappingProtocol;
  /** Does the protocol answer at all, and with which external address. */
  probe(): Promise<{ answered: boolean; externalAddress: string | null; detail: string }>;
  /** Maps UDP `internalPort` for a short lease; null if the protocol cannot (or this one does not try). */
  map?(internalPort: number): Promise<{ externalPort: number; unmap(): Promise<void> } | null>;
}

/**
 * How long a gateway has to answer. A LAN router answers SSDP and NAT-PMP within milliseconds,
 * but the UPnP client also fetches the device's description over HTTP, and under load (the lab at
 * load average 15) 1.5 s missed a miniupnpd that was there. Doctor waits for all protocols at once,
 * so this is about what a run behind a router without any of them costs.
 */
const DISCOVERY_MS = 3000;
/** SSDP is multicast UDP: a lost M-SEARCH is sent again. */
const SSDP_REPEAT_MS = 1000;
/** A test mapping lives a minute at most if our unmap is lost. */
const TEST_LEASE_MS = 60_000;

const abortAfter = (ms: number) => AbortSignal.timeout(ms);

/** The library's calls take an abort signal; this bounds them even where one is not honoured. */
function within<T>(ms: number, p: Promise<T>): Promise<T | null> {
  return Promise.race([p.catch(() => null), new Promise<null>((r) => setTimeout(() => r(null), ms).unref())]);
}

function gatewayMapper(protocol: 'upnp' | 'natpmp', find: () => Promise<Gateway | null>, lanAddress: IpAddress): PortMapper {
  let gw: Gateway | null | undefined;
  const gateway = async () => (gw === undefined ? (gw = await within(DISCOVERY_MS + 500, find())) : gw);
  // externalIp and map come after discovery, on a router that has answered: they get the same bound again.
  return {
    protocol,
    async probe() {
      const g = await gateway();
      if (!g) return { answered: false, externalAddress: null, detail: protocol === 'upnp' ? 'no UPnP-IGD gateway answered the SSDP search' : 'no NAT-PMP answer from the gateway' };
      const ext = await within(DISCOVERY_MS + 500, g.externalIp({ signal: abortAfter(DISCOVERY_MS) }));
      if (ext === null) return { answered: false, externalAddress: null, detail: `${PROTOCOL_NAMES[protocol]} found at ${g.host} but gave no external address` };
      return { answered: true, externalAddress: ext, detail: `${PROTOCOL_NAMES[protocol]} at ${g.host}` };
    },
    async map(internalPort) {
      const g = await gateway();
      if (!g) return null;
      const m = await within(DISCOVERY_MS * 2 + 500, g.map(internalPort, lanAddress.toString(), { protocol: 'udp', ttl: TEST_LEASE_MS, autoRefresh: false, description: 'wgp2p doctor test', signal: abortAfter(DISCOVERY_MS * 2) }));
      if (!m) return null;
      return { externalPort: m.externalPort, unmap: async () => void (await within(DISCOVERY_MS + 500, g.unmap(internalPort, { signal: abortAfter(DISCOVERY_MS) }))) };
    },
  };
}

export function defaultMappers(gateway4: IpAddress | null, lanAddress: IpAddress | null): PortMapper[] {
  const none = (protocol: PortMappingProtocol, detail: string): PortMapper => ({ protocol, probe: async () => ({ answered: false, externalAddress: null, detail }) });
  if (!gateway4 || !lanAddress) return (['upnp', 'natpmp', 'pcp'] as const).map((p) => none(p, 'no IPv4 default gateway'));
  return [
    gatewayMapper(
      'upnp',
      async () => {
        // Loaded on use (see agent/port-mapping/upnp.ts).
        const { upnpNat } = await import('@achingbrain/nat-port-mapper');
        const client = upnpNat({ autoRefresh: false });
        for await (const g of client.findGateways({ signal: abortAfter(DISCOVERY_MS), searchInterval: SSDP_REPEAT_MS })) if (g.family === 'IPv4') return g;
        return null;
      },
      lanAddress,
    ),
    gatewayMapper(
      'natpmp',
      async () => {
        const { pmpNat } = await import('@achingbrain/nat-port-mapper');
        const g = pmpNat(gateway4.toString(), { autoRefresh: false });
        // NAT-PMP has no discovery: the gateway answers an external-address request or nothing does.
        await g.externalIp({ signal: abortAfter(DISCOVERY_MS) });
        return g;
      },
      lanAddress,
    ),
    {
      protocol: 'pcp',
      async probe() {
        const r = await pcpAnnounce(gateway4, lanAddress);
        return r.ok ? { answered: true, externalAddress: null, detail: `PCP at ${gateway4} (epoch ${r.epoch})` } : { answered: false, externalAddress: null, detail: `PCP: ${r.reason}` };
      },
    },
  ];
}

/**
 * Probes every mapper at once (each waits on its own timeout: 1.5 s for an SSDP search nothing
 * answers); for those that answer, makes a test mapping and checks that the hub's datagram comes
 * through it.
 */
export async function probePortMapping(mappers: PortMapper[], stun: Endpoint | null, step: (what: string) => void = () => undefined): Promise<PortMappingFact[]> {
  step(`asking the router for ${mappers.map((m) => PROTOCOL_NAMES[m.protocol]).join(', ')}`);
  return Promise.all(
    mappers.map(async (m) => {
      const p = await m.probe();
      const fact: PortMappingFact = { protocol: m.protocol, answered: p.answered, externalAddress: p.externalAddress, forwards: null, detail: p.detail };
      if (p.answered && m.map && stun) {
        step(`${PROTOCOL_NAMES[m.protocol]}: a test mapping, and a datagram from the hub through it`);
        fact.forwards = await forwards(m, stun, fact);
      }
      return fact;
    }),
  );
}

async function forwards(m: PortMapper, stun: Endpoint, fact: PortMappingFact): Promise<boolean | null> {
  const mapped = await StunSocket.bind(4);
  const asker = await StunSocket.bind(4);
  let undo: (() => Promise<void>) | undefined;
  try {
    const r = await m.map!(mapped.port);
    if (!r) {
      fact.detail += '; it refused a test mapping';
      return false;
    }
    undo = r.unmap;
    // The hub answers to the source address it sees, at the port the router says it mapped.
    const req = StunSocket.request({ responsePort: r.externalPort });
    const heard = await asker.transact(stun, req, { on: mapped });
    const where = fact.externalAddress ? Endpoint.tryParse(`${fact.externalAddress}:${r.externalPort}`)?.toString() ?? `port ${r.externalPort}` : `port ${r.externalPort}`;
    fact.detail += heard ? `; a test mapping (${where}) forwards` : `; a test mapping (${where}) does not forward what the hub sends to it${fact.externalAddress && heard === null ? ' (is there another NAT in front of the router?)' : ''}`;
    return heard !== null;
  } finally {
    await undo?.();
    mapped.close();
    asker.close();
  }
}
