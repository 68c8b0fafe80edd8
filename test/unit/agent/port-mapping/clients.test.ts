import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import type { GatewayInfo } from '../../../../src/agent/port-mapping/gateway.js';
import { natpmpClient } from '../../../../src/agent/port-mapping/natpmp.js';
import { pcpClient } from '../../../../src/agent/port-mapping/pcp.js';
import { exchange } from '../../../../src/agent/port-mapping/udp-exchange.js';
import { IpAddress } from '../../../../src/core/net/address.js';
import { decodePcpMap, PCP_SERVER_PORT } from '../../../../src/core/portmap/pcp.js';

/**
 * The PCP client against a router on loopback that answers as a broken or hostile one would,
 * then (maybe) properly. The router sits on its own 127/8 address, so that the fixed port 5351
 * does not collide with anything else on the machine.
 */
const ROUTER = '127.83.53.51';
const gw: GatewayInfo = { gateway: IpAddress.parse(ROUTER), local: IpAddress.parse('127.0.0.1'), dev: 'lo' };

const h = (n: number, bytes: number) => n.toString(16).padStart(bytes * 2, '0');
/** A MAP response (RFC 6887 figures 3 and 9) to a request, with fields overridden. */
function mapResponse(req: Buffer, o: { result?: number; nonce?: string; internal?: number; external?: number } = {}): Buffer {
  const nonce = o.nonce ?? req.subarray(24, 36).toString('hex');
  const internal = o.internal ?? req.readUInt16BE(24 + 16);
  return Buffer.from(
    '0281' + '00' + h(o.result ?? 0, 1) + h(7200, 4) + h(5000, 4) + '00'.repeat(12) + nonce + '11000000' + h(internal, 2) + h(o.external ?? 40999, 2) + '00000000000000000000ffffc000030a',
    'hex',
  );
}

async function router(answer: (req: Buffer, reply: (b: Buffer, fromOtherPort?: boolean) => void) => void): Promise<{ close(): void; requests: number }> {
  const main = createSocket('udp4');
  const other = createSocket('udp4');
  await new Promise<void>((r) => main.bind(PCP_SERVER_PORT, ROUTER, r));
  await new Promise<void>((r) => other.bind(0, ROUTER, r));
  const state = { requests: 0, close: () => (main.close(), other.close()) };
  main.on('message', (req, rinfo) => {
    state.requests++;
    answer(req, (b, fromOtherPort) => (fromOtherPort ? other : main).send(b, rinfo.port, rinfo.address));
  });
  return state;
}

test('PCP client: garbage, a reply to another mapping, a reply from another port are all passed over; the real answer is used, with the port the router chose', async () => {
  const r = await router((req, reply) => {
    reply(Buffer.from([2, 0x81, 0])); // short
    reply(mapResponse(req, { nonce: 'ff'.repeat(12) })); // another mapping's nonce
    reply(mapResponse(req, { external: 1 }), true); // not from the server's port
    reply(mapResponse(req));
  });
  try {
    const g = await pcpClient.map(gw, 51820, 7200);
    assert.ok(g.ok, g.ok ? '' : g.problem);
    assert.equal(g.grant.external.toString(), '192.0.3.10:40999', 'another external port than asked for works');
    assert.equal(g.grant.internalPort, 51820);
    assert.equal(g.grant.epochS, 5000);
    assert.equal(r.requests, 1);
  } finally {
    r.close();
  }
});

test('PCP client: a refusal ends the wait at once, with the result code in words', async () => {
  const r = await router((req, reply) => {
    reply(Buffer.from('garbage!'));
    reply(mapResponse(req, { result: 2 }));
  });
  try {
    const g = await pcpClient.map(gw, 51820, 7200);
    assert.ok(!g.ok);
    assert.equal(g.answered, true);
    assert.match(g.problem, /NOT_AUTHORIZED \(2\)/);
    assert.equal(r.requests, 1, 'not retransmitted: the router has spoken');
  } finally {
    r.close();
  }
});

test('a router that only ever answers garbage: the exchange gives up after its schedule and says what was wrong, not "no answer"', async () => {
  const nonce = new Uint8Array(12).fill(7);
  const r = await router((req, reply) => reply(mapResponse(req, { internal: 22 })));
  try {
    const x = await exchange({
      local: gw.local,
      server: gw.gateway,
      port: PCP_SERVER_PORT,
      request: Buffer.concat([Buffer.from('0201', 'hex'), Buffer.alloc(22), Buffer.from(nonce), Buffer.from('11000000ca6cca6c', 'hex'), Buffer.alloc(16)]),
      accept: (buf) => {
        const d = decodePcpMap(buf, { nonce, internalPort: 51820 });
        return d.ok ? { kind: 'done', value: d.value } : { kind: 'ignore', problem: d.problem };
      },
      schedule: [50, 50],
    });
    assert.ok(!x.ok);
    assert.equal(x.answered, true);
    assert.match(x.problem, /router answered, but not usably: MAP reply is for internal port 22, not 51820/);
    assert.equal(r.requests, 2);
  } finally {
    r.close();
  }
});


test('NAT-PMP client: noise before each answer is passed over; a PCP-only server (version 2) is a final answer', async () => {
  const r = await router((req, reply) => {
    reply(Buffer.from('noise'));
    // RFC 6886 sections 3.2 and 3.3: the external address, then the UDP mapping (another port than asked).
    if (req[1] === 0) reply(Buffer.from('0080' + '0000' + h(5000, 4) + 'c000030a', 'hex'));
    else reply(Buffer.from('0081' + '0000' + h(5001, 4) + h(req.readUInt16BE(4), 2) + h(40998, 2) + h(7200, 4), 'hex'));
  });
  try {
    const g = await natpmpClient.map(gw, 51820, 7200);
    assert.ok(g.ok, g.ok ? '' : g.problem);
    assert.equal(g.grant.external.toString(), '192.0.3.10:40998');
    assert.equal(g.grant.lifetimeS, 7200);
  } finally {
    r.close();
  }
  const pcpOnly = await router((_req, reply) => reply(Buffer.from('02800001' + '00'.repeat(20), 'hex')));
  try {
    const g = await natpmpClient.map(gw, 51820, 7200);
    assert.ok(!g.ok);
    assert.match(g.problem, /version 2/);
    assert.equal(pcpOnly.requests, 1, 'no retransmission: the router has spoken');
  } finally {
    pcpOnly.close();
  }
});
