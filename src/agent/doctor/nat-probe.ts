import { networkInterfaces } from 'node:os';
import { IpAddress, type Family } from '../../core/net/address.js';
import type { Endpoint } from '../../core/net/endpoint.js';
import type { FamilyFacts } from '../../core/doctor/report.js';
import { StunSocket } from '../../core/stun/client.js';

/**
 * How this machine's router treats UDP in one family, measured against the hub's STUN responder
 * (two ports of one address) with plain sockets, the way `wgp2p lab verify` measures its profiles
 * from outside. Each step uses fresh sockets, so no step's mapping helps another's.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How long to listen for a datagram that was sent toward us (the hub is one round trip away; a lost one is retransmitted). */
const LISTEN_MS = 800;
/** Between the hub's datagram at the router and our own first packet from that port: the router has handled it by then. */
const AFTER_POISON_MS = 150;

function localAddresses(family: Family): IpAddress[] {
  const out: IpAddress[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const ip = IpAddress.tryParse(a.address.split('%')[0]);
      // A link-local address reaches no hub: an IPv6 network that gives only fe80:: is no IPv6 at all.
      if (ip && ip.family === family && !a.internal && ip.scope() !== 'link-local') out.push(ip);
    }
  }
  return out;
}

/** A port nothing here uses right now, chosen by the system. */
async function freePort(family: Family): Promise<number> {
  const s = await StunSocket.bind(family);
  const p = s.port;
  s.close();
  return p;
}

export const emptyFacts = (family: 4 | 6, server: Endpoint | null, note?: string): FamilyFacts => ({
  family,
  server: server?.toString() ?? null,
  udp: false,
  mapped: null,
  mappedOther: null,
  mapping: null,
  portPreserved: null,
  addressKept: null,
  filtering: null,
  unsolicited: null,
  hairpin: null,
  portAfterProbe: null,
  leaky: null,
  notes: note ? [note] : [],
});

/** Measures one family against `server` (the hub's STUN primary endpoint). `step` reports progress. */
export async function probeFamily(server: Endpoint, step: (what: string) => void = () => undefined): Promise<FamilyFacts> {
  const family = server.family;
  const facts = emptyFacts(family, server);
  const own = localAddresses(family);
  if (own.length === 0) return { ...facts, notes: [`this machine has no IPv${family} address`] };
  const open: StunSocket[] = [];
  const bind = async (port = 0) => {
    const s = await StunSocket.bind(family, port);
    open.push(s);
    return s;
  };
  try {
    step(`IPv${family}: asking the hub where it sees us`);
    const a = await bind();
    const first = await a.transact(server, StunSocket.request());
    if (!first?.message.mapped) return { ...facts, notes: ['no answer from the hub\'s STUN port: UDP is blocked, or the hub runs without STUN (--no-stun)'] };
    const mapped = first.message.mapped;
    facts.udp = true;
    facts.mapped = mapped.toString();
    facts.portPreserved = mapped.port === a.port;
    facts.addressKept = own.some((x) => x.equals(mapped.address));
    const nat = !facts.addressKept;

    const other = first.message.otherAddress;
    if (other) {
      step(`IPv${family}: the same socket toward the hub's other port (mapping)`);
      const second = await a.transact(other, StunSocket.request());
      if (second?.message.mapped) {
        facts.mappedOther = second.message.mapped.toString();
        facts.mapping = second.message.mapped.equals(mapped) ? 'independent' : 'dependent';
      } else facts.notes.push('the hub\'s other STUN port did not answer: mapping not measured');
    } else facts.notes.push('the STUN server names no other address: mapping not measured');

    step(`IPv${family}: a datagram to a port that has sent nothing (unsolicited)`);
    const quiet = await bind();
    const asker = await bind();
    // Without NAT the port is our own; behind a port-preserving NAT it is the same number on the router.
    const unsolicited = StunSocket.request({ responsePort: quiet.port });
    facts.unsolicited = (await asker.transact(server, unsolicited, { on: quiet })) !== null;

    step(`IPv${family}: an answer from the hub's other port (filtering)`);
    const f = await bind();
    const fromOther = await f.transact(server, StunSocket.request({ changePort: true }));
    const plain = fromOther ?? (await f.transact(server, StunSocket.request()));
    if (fromOther) facts.filtering = facts.unsolicited ? 'independent' : 'address';
    else if (plain) facts.filtering = 'address+port';
    else facts.notes.push('filtering not measured: the hub stopped answering');

    if (nat) {
      step(`IPv${family}: reaching our own public mapping through the router (hairpin)`);
      const h = await bind();
      const ping = StunSocket.request();
      const heard = a.expect(ping, LISTEN_MS);
      h.send(mapped, ping);
      await sleep(100);
      h.send(mapped, ping);
      facts.hairpin = (await heard) !== null;

      step(`IPv${family}: does the router take a port the hub sent to first (leaky)`);
      const port = await freePort(family);
      const poisoner = await bind();
      // The hub's primary port sends to the router's `port` before anything inside has used it.
      poisoner.send(server, StunSocket.request({ responsePort: port }));
      await sleep(AFTER_POISON_MS);
      const victim = await bind(port);
      const after = await victim.transact(server, StunSocket.request());
      if (after?.message.mapped) {
        facts.portAfterProbe = after.message.mapped.port === port;
        // Only a NAT that otherwise keeps the port (and maps the same toward every destination) can be called leaky.
        facts.leaky = facts.portPreserved && facts.mapping !== 'dependent' ? !facts.portAfterProbe : null;
      }
    }
    return facts;
  } finally {
    for (const s of open) s.close();
  }
}
