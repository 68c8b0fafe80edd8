import { z } from 'zod';
import { nodeStatusSchema, pairStatusSchema } from '../status.js';

/**
 * What `wgp2p doctor` found, as one schema: the CLI prints it as text or `--json`, the lab test
 * and the unit tests decode it, so what a script reads is what the code checks. Plain JSON
 * (endpoints as text). `null` means "could not be learned here", never "no".
 */

export const mappingSchema = z.enum(['independent', 'dependent']);
/**
 * With one observer address (the hub's two ports), filtering can be told apart as: anyone gets in,
 * even to a port nothing has sent from (`independent`); the hub's other port gets in (`address`:
 * at most address-dependent); only the exact address and port sent to (`address+port`).
 */
export const filteringSchema = z.enum(['independent', 'address', 'address+port']);

export const familyFactsSchema = z.object({
  family: z.union([z.literal(4), z.literal(6)]),
  /** The STUN endpoint asked (the hub's), or null when this machine has no address of the family. */
  server: z.string().nullable(),
  /** A STUN answer came back at all. */
  udp: z.boolean(),
  /** Where the hub's primary port saw this machine, and where its other port saw the same socket. */
  mapped: z.string().nullable(),
  mappedOther: z.string().nullable(),
  mapping: mappingSchema.nullable(),
  portPreserved: z.boolean().nullable(),
  /** The hub saw this machine's own address: nothing translates. */
  addressKept: z.boolean().nullable(),
  filtering: filteringSchema.nullable(),
  /** A datagram reached a port that had sent nothing (no NAT and no firewall, or a full cone). */
  unsolicited: z.boolean().nullable(),
  /** This machine reached its own public mapping through the router. */
  hairpin: z.boolean().nullable(),
  /** After the hub sent to a router port first, the port was still this machine's toward the hub (architecture section 6). */
  portAfterProbe: z.boolean().nullable(),
  /** The router takes a port for an unsolicited datagram (restricted-leaky): derived from portAfterProbe. */
  leaky: z.boolean().nullable(),
  notes: z.array(z.string()),
});
export type FamilyFacts = z.infer<typeof familyFactsSchema>;

export const PORT_MAPPING_PROTOCOLS = ['upnp', 'natpmp', 'pcp'] as const;
export const portMappingProtocolSchema = z.enum(PORT_MAPPING_PROTOCOLS);
export type PortMappingProtocol = z.infer<typeof portMappingProtocolSchema>;
export const PROTOCOL_NAMES: Record<PortMappingProtocol, string> = { upnp: 'UPnP-IGD', natpmp: 'NAT-PMP', pcp: 'PCP' };

export const portMappingFactSchema = z.object({
  protocol: portMappingProtocolSchema,
  answered: z.boolean(),
  /** The external address the router says it maps on (a carrier address under CGNAT: then nothing from the internet arrives). */
  externalAddress: z.string().nullable(),
  /** A test mapping was made and a datagram from the hub came through it; null: not tried. */
  forwards: z.boolean().nullable(),
  detail: z.string(),
});
export type PortMappingFact = z.infer<typeof portMappingFactSchema>;

/** On an agent: its WireGuard port as the hub and the relay see it, and what the hub knows. */
export const hubViewSchema = z.object({
  node: nodeStatusSchema,
  /** Peers this node shares a pair with; their endpoints are left out (section 3: privacy). */
  peers: z.array(nodeStatusSchema.omit({ endpoint: true })),
  pairs: z.array(pairStatusSchema),
  /** Where the relay last confirmed this node's WireGuard port, if it has relayed for it. */
  relaySeen: z.string().nullable(),
});
export type HubView = z.infer<typeof hubViewSchema>;

export const wireguardFactsSchema = z.object({
  interface: z.string(),
  listenPort: z.number().nullable(),
  /** Age of the last handshake with the hub peer: UDP to the hub over WireGuard itself. */
  hubHandshakeAgeMs: z.number().nullable(),
  hubSeen: z.string().nullable(),
  relaySeen: z.string().nullable(),
  /** From the two observers: does WireGuard's own port map the same toward the hub and the relay? */
  mapping: mappingSchema.nullable(),
  portPreserved: z.boolean().nullable(),
});

export const peerOutlookSchema = z.object({
  /** A kind of peer, in words ("home routers", "symmetric NATs"). */
  peer: z.string(),
  /** unknown: nothing could be measured (the hub's STUN port does not answer, but WireGuard reaches the hub). */
  path: z.enum(['direct', 'relay', 'not connected', 'unknown']),
  why: z.string(),
});
export type PeerOutlook = z.infer<typeof peerOutlookSchema>;

export const pairExplanationSchema = z.object({ pair: z.string(), path: z.string(), explanation: z.string() });
export type PairExplanation = z.infer<typeof pairExplanationSchema>;

export const doctorReportSchema = z.object({
  /** The node's name on an agent; null elsewhere. */
  node: z.string().nullable(),
  ipv4: familyFactsSchema,
  ipv6: familyFactsSchema,
  portMapping: z.array(portMappingFactSchema),
  wireguard: wireguardFactsSchema.nullable(),
  hub: hubViewSchema.nullable(),
  /** The short answer, one line each. */
  summary: z.array(z.string()),
  outlook: z.array(peerOutlookSchema),
  pairs: z.array(pairExplanationSchema),
  tookMs: z.number(),
});
export type DoctorReport = z.infer<typeof doctorReportSchema>;

/** `wgp2p doctor --dir` on the hub: every pair that is not direct, explained from the hub's knowledge. */
export const hubDoctorReportSchema = z.object({ pairs: z.array(pairExplanationSchema), total: z.number() });
export type HubDoctorReport = z.infer<typeof hubDoctorReportSchema>;
