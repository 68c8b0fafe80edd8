import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { probePortMapping, type PortMapper } from '../../../src/agent/doctor/port-mapping.js';
import { IpAddress } from '../../../src/core/net/address.js';
import { Endpoint } from '../../../src/core/net/endpoint.js';
import { StunResponder } from '../../../src/hub/stun-responder.js';

/**
 * A mapping is believed only if the hub's datagram comes through it: routers that map the wrong
 * port, or map and do not forward, are found out. On loopback, the "router" is a stand-in whose
 * external port is the one it claims.
 */
const LO = IpAddress.parse('127.0.0.1');
const port = 20001 + ((process.pid * 2) % 20000);

function mapper(protocol: PortMapper['protocol'], claim: (internal: number) => number | null): PortMapper & { unmapped: number[] } {
  const unmapped: number[] = [];
  return {
    protocol,
    unmapped,
    probe: async () => ({ answered: true, externalAddress: '127.0.0.1', detail: `${protocol} stand-in` }),
    async map(internal) {
      const external = claim(internal);
      return external === null ? null : { externalPort: external, unmap: async () => void unmapped.push(internal) };
    },
  };
}

test('a test mapping counts only when the hub\'s datagram arrives through it; every test mapping is removed again', async () => {
  const r = await StunResponder.start({ addresses: [LO], port, log: pino({ level: 'silent' }) });
  try {
    const honest = mapper('upnp', (p) => p);
    const wrongPort = mapper('natpmp', (p) => (p === 65535 ? 65534 : p + 1));
    const refuses = mapper('pcp', () => null);
    const silent: PortMapper = { protocol: 'pcp', probe: async () => ({ answered: false, externalAddress: null, detail: 'no answer' }) };
    const facts = await probePortMapping([honest, wrongPort, refuses], Endpoint.of(LO, port));
    assert.deepEqual(facts.map((f) => [f.protocol, f.answered, f.forwards]), [['upnp', true, true], ['natpmp', true, false], ['pcp', true, false]]);
    assert.match(facts[1].detail, /does not forward what the hub sends to it/);
    assert.match(facts[2].detail, /refused a test mapping/);
    assert.equal(honest.unmapped.length, 1, 'the honest mapping was removed');
    assert.equal(wrongPort.unmapped.length, 1, 'so was the one that did not forward');
    const none = await probePortMapping([silent], Endpoint.of(LO, port));
    assert.deepEqual(none.map((f) => [f.answered, f.forwards]), [[false, null]], 'a protocol that does not answer is not tried');
  } finally {
    r.close();
  }
});
