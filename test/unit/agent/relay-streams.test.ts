import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RelayStreams } from '../../../src/agent/relay-streams.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { IpAddress } from '../../../src/core/net/address.js';
import { newTicket, ticketHash, TICKET_FIRST_USE_MS } from '../../../src/core/stream/ticket.js';
import { generateTlsIdentity, type TlsIdentity } from '../../../src/core/stream/tls-identity.js';
import { fakeInitiation, fakeResponse, senderIndex } from '../../../src/lab/fake-wireguard.js';
import { Relay } from '../../../src/relay/relay.js';
import { StreamServer } from '../../../src/relay/stream-server.js';
import { TicketBook } from '../../../src/relay/ticket-book.js';
import { realClock } from '../../../src/core/clock.js';
import { node, silent, udpPeer, until, type Peer } from '../stream-fixtures.js';

const A = node();
const B = node();

let identity: TlsIdentity;
let relay: Relay;
let book: TicketBook;
let server: StreamServer;
let port: number;
let wg: Peer;
let streams: RelayStreams;

before(async () => {
  identity = await generateTlsIdentity();
  relay = new Relay({ addresses: ['127.0.0.1'], portMin: 46700, portMax: 46740, idleMs: 60_000 });
  book = new TicketBook(realClock);
  server = new StreamServer({ tls: identity, tickets: (id, t, k) => book.verify(id, t, k), streamSide: (id, k) => relay.streamSide(id, k), log: silent });
  port = await server.listen('127.0.0.1', 0);
  wg = await udpPeer();
  streams = new RelayStreams({ wireguard: async () => wg.endpoint, log: silent });
});

after(async () => {
  streams.stop();
  wg.close();
  await server.close();
  await relay.close();
});

test("the agent's side on a relay's own stream side: opened with the hub's ticket, WireGuard's datagrams reach the other side and back; one stream per relay, gone with its last allocation", async () => {
  const at = Endpoint.of(IpAddress.parse('127.0.0.1'), port);
  const allocate = async (id: string) => {
    const { portB } = await relay.allocate(id, { publicKey: A.publicKey, ip: '127.0.0.1' }, { publicKey: B.publicKey, ip: '127.0.0.2' });
    const ticket = newTicket();
    book.add(id, A.publicKey, ticketHash(id, A.publicKey, ticket), TICKET_FIRST_USE_MS);
    return { portB, remote: { endpoint: at, pin: identity.pin, ticket } };
  };
  const one = await allocate('00000000000000c1');
  const local = await streams.open('00000000000000c1', one.remote);
  assert.equal(local.address.toString(), '127.0.0.1');
  assert.deepEqual(streams.status(), [{ relay: at.toString(), stream: 'up', allocations: 1 }], 'open waits for the stream to be up');
  const b = await udpPeer('127.0.0.2');
  // A's WireGuard sends first (its side becomes a candidate), then B's initiation comes back to it.
  const ia = fakeInitiation(B.publicKey);
  wg.send(ia, local.port, '127.0.0.1');
  const ib = fakeInitiation(A.publicKey);
  await until(() => {
    b.send(ib, one.portB, '127.0.0.1');
    return wg.got.some((d) => d.equals(ib));
  }, "B's initiation at A's WireGuard");
  assert.deepEqual(wg.from.at(-1), { address: '127.0.0.1', port: local.port }, 'from the one local port WireGuard points at');
  wg.send(fakeResponse(B.publicKey, senderIndex(ib)), local.port, '127.0.0.1');
  await until(() => b.got.length > 0, "A's response at B");

  const two = await allocate('00000000000000c2');
  await streams.open('00000000000000c2', two.remote);
  assert.deepEqual(streams.status(), [{ relay: at.toString(), stream: 'up', allocations: 2 }], 'the second allocation on the same relay rides the same stream');
  assert.equal(server.stats().nodes, 1);
  streams.close('00000000000000c1');
  assert.equal(streams.status()[0]?.allocations, 1);
  streams.close('00000000000000c2');
  assert.deepEqual(streams.status(), [], 'the stream stops with its last allocation');
  b.close();
});
