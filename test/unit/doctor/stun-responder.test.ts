import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { test } from 'node:test';
import pino from 'pino';
import { IpAddress } from '../../../src/core/net/address.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { StunSocket } from '../../../src/core/stun/client.js';
import { METHOD_BINDING } from '../../../src/core/stun/message.js';
import { StunResponder } from '../../../src/hub/stun-responder.js';

/** On loopback, real sockets: what the hub's responder answers, from where, to where, and what it refuses. */
const LO = IpAddress.parse('127.0.0.1');
const port = 20000 + ((process.pid * 2) % 20000);

test('the STUN responder: mapped address, the other port, RESPONSE-PORT, no answer larger than a redirected request, a rate limit', async () => {
  const r = await StunResponder.start({ addresses: [LO], port, log: pino({ level: 'silent' }), perSource: { rate: 0.001, burst: 12 } });
  const a = await StunSocket.bind(4);
  const b = await StunSocket.bind(4);
  try {
    const hub = Endpoint.of(LO, port);
    const plain = await a.transact(hub, StunSocket.request());
    assert.equal(plain?.message.mapped?.toString(), `127.0.0.1:${a.port}`);
    assert.equal(plain?.message.otherAddress?.toString(), `127.0.0.1:${port + 1}`, 'a padded request has room for the other address');

    // A bare 20-byte request (most STUN clients) gets the mapped address alone: no answer three times its size.
    const bare = { cls: 'request' as const, method: METHOD_BINDING, transactionId: Buffer.alloc(12, 1) };
    const small = await a.transact(hub, bare);
    assert.ok(small?.message.mapped);
    assert.equal(small?.message.otherAddress, undefined);

    const changed = await a.transact(hub, StunSocket.request({ changePort: true }));
    assert.equal(changed?.from.port, port + 1, 'change-port is answered from the other port');

    const elsewhere = await a.transact(hub, StunSocket.request({ responsePort: b.port }), { on: b });
    assert.equal(elsewhere?.message.mapped?.toString(), `127.0.0.1:${a.port}`, 'the answer to RESPONSE-PORT reaches the other socket');

    // A redirect without padding would be an amplifier: dropped.
    const unpadded = await a.transact(hub, { ...bare, transactionId: Buffer.alloc(12, 2), changePort: true }, { tries: 1 });
    assert.equal(unpadded, null);
    assert.equal(r.counters.tooSmall, 1);

    // Garbage on the port is counted and changes nothing.
    const g = createSocket('udp4');
    await new Promise<void>((res) => g.send(Buffer.from('\x00\x01\x00\x00\x21\x12\xa4\x42garbage-----'), port, '127.0.0.1', () => res()));
    g.close();

    // The bucket held 12; what is left runs out, and the source is refused from then on.
    let answered = 0;
    for (let i = 0; i < 10; i++) if (await a.transact(hub, StunSocket.request(), { tries: 1 })) answered++;
    assert.ok(answered < 10, `rate limit: ${answered} of 10 answered`);
    assert.ok(r.counters.limited > 0);
    assert.ok(r.counters.malformed >= 1, 'garbage was counted');
  } finally {
    a.close();
    b.close();
    r.close();
  }
});
