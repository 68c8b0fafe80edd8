import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { describeAttempt, describeTransport, JoinStream, joinPlan, STREAM_TRY_MS, UDP_ALONE_MS, UDP_BEFORE_STREAM_MS } from '../../../src/agent/join-transport.js';
import { IpAddress } from '../../../src/core/net/address.js';
import { HostPort } from '../../../src/core/net/endpoint.js';
import { generateTlsIdentity, type TlsIdentity } from '../../../src/core/stream/tls-identity.js';
import { generateKeyPair, type KeyPair } from '../../../src/core/wireguard/keys.js';
import { byEnrolKeyIn, joinStreamCheck } from '../../../src/hub/join-stream.js';
import type { NodeRecord } from '../../../src/hub/store/model.js';
import { fakeInitiation, fakeResponse, senderIndex } from '../../../src/lab/fake-wireguard.js';
import { StreamServer } from '../../../src/relay/stream-server.js';
import { testHub, testNode } from '../hub/fixtures.js';
import { silent, udpPeer, until, type Peer } from '../stream-fixtures.js';

const pin = 'sha256/' + Buffer.alloc(32, 7).toString('base64');

describe('the join plan', () => {
  test('UDP first, each endpoint an equal share, then the stream side at each host of the endpoints', () => {
    const plan = joinPlan(['203.0.113.2:51820', '[2001:db8::2]:51820'], { port: 443, pin });
    assert.deepEqual(
      plan.map((a) => [a.kind, a.kind === 'udp' ? a.endpoint : a.relay.toString(), a.waitMs]),
      [
        ['udp', '203.0.113.2:51820', UDP_BEFORE_STREAM_MS / 2],
        ['udp', '[2001:db8::2]:51820', UDP_BEFORE_STREAM_MS / 2],
        ['stream', '203.0.113.2:443', STREAM_TRY_MS],
        ['stream', '[2001:db8::2]:443', STREAM_TRY_MS],
      ],
    );
  });

  test('a DNS name is one stream host, whatever its endpoints; the stream port is the code\'s', () => {
    const plan = joinPlan(['vpn.example.org:51820'], { port: 8443, pin });
    assert.deepEqual(plan.map((a) => (a.kind === 'udp' ? a.endpoint : a.relay.toString())), ['vpn.example.org:51820', 'vpn.example.org:8443']);
  });

  test('a code without a stream side: UDP alone, with all the time there is', () => {
    assert.deepEqual(joinPlan(['203.0.113.2:51820'], undefined), [{ kind: 'udp', endpoint: '203.0.113.2:51820', waitMs: UDP_ALONE_MS }]);
  });

  test("the progress lines say the transport; a proxy's password is never shown", () => {
    const [, stream] = joinPlan(['203.0.113.2:51820'], { port: 443, pin });
    assert.equal(describeAttempt(stream, {}), 'TLS over TCP to 203.0.113.2:443');
    const shown = describeAttempt(stream, { HTTPS_PROXY: 'http://alice:s3cret@10.0.0.3:8888' });
    assert.equal(shown, 'TLS over TCP to 203.0.113.2:443 through the HTTP proxy 10.0.0.3:8888');
    assert.doesNotMatch(shown, /s3cret|alice/);
    assert.equal(describeTransport({ kind: 'stream', relay: '203.0.113.2:443', proxy: undefined, handshakeMs: 40 }), 'over the stream (TLS to 203.0.113.2:443, handshake in 40 ms; UDP to the hub gave none)');
    assert.match(describeTransport({ kind: 'udp', endpoint: '203.0.113.2:51820', handshakeMs: 3 }), /^over UDP \(203.0.113.2:51820/);
  });
});

describe("the join's stream against the hub's stream side", () => {
  const hub = testHub();
  let identity: TlsIdentity;
  let wg: Peer;
  let hubWg: Peer;
  let server: StreamServer;
  let port: number;
  let code: KeyPair;
  const nodes: NodeRecord[] = [];
  const streams: JoinStream[] = [];
  const saved = { HTTPS_PROXY: process.env.HTTPS_PROXY, https_proxy: process.env.https_proxy, ALL_PROXY: process.env.ALL_PROXY, all_proxy: process.env.all_proxy };

  before(async () => {
    for (const k of Object.keys(saved)) delete process.env[k];
    identity = await generateTlsIdentity();
    wg = await udpPeer('127.0.0.1');
    hubWg = await udpPeer('127.0.0.1');
    code = generateKeyPair();
    nodes.push(testNode('laptop', 5, ['default'], { publicKey: '', enrolKey: code.publicKey, enrolExpiresAt: Date.now() + 3600_000 }));
    server = new StreamServer({
      tls: identity,
      authenticate: () => false,
      authenticateJoin: joinStreamCheck({ hub, byEnrolKey: byEnrolKeyIn(() => nodes), now: Date.now }),
      streamSide: () => ({ kind: 'unknown' }),
      hub: { endpoint: hubWg.endpoint, source: IpAddress.parse('127.0.0.1') },
      log: silent,
    });
    port = await server.listen('127.0.0.1', 0);
  });

  after(async () => {
    streams.forEach((s) => s.stop());
    await server.close();
    wg.close();
    hubWg.close();
    for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
  });

  const start = (c: { key: string; hubPublicKey: string }, streamPin = identity.pin) => {
    const s = new JoinStream(c, { port, pin: streamPin }, HostPort.parse(`127.0.0.1:${port}`), wg.port, silent);
    streams.push(s);
    return s;
  };

  test("the one-time tunnel's handshake crosses the stream both ways", async () => {
    const s = start({ key: code.privateKey, hubPublicKey: hub.publicKey });
    const local = await s.start();
    await until(() => s.up, 'the join stream up');
    const init = fakeInitiation(hub.publicKey);
    wg.send(init, local.port, '127.0.0.1');
    await until(() => hubWg.got.length === 1, "the initiation at the hub's WireGuard");
    assert.ok(hubWg.got[0].equals(init));
    const resp = fakeResponse(code.publicKey, senderIndex(init));
    hubWg.send(resp, hubWg.from[0].port, '127.0.0.1');
    await until(() => wg.got.some((b) => b.equals(resp)), "the response at the device's WireGuard");
    s.stop();
  });

  test('a used code: the join learns it at once, as a refusal retrying does not fix', async () => {
    nodes[0] = { ...nodes[0], enrolUsed: true };
    try {
      const s = start({ key: code.privateKey, hubPublicKey: hub.publicKey });
      await s.start();
      await until(() => s.refusal !== undefined, 'the refusal');
      assert.match(s.refusal!, /already used.*ask for a new one/);
      assert.equal(s.up, false);
      s.stop();
    } finally {
      nodes[0] = { ...nodes[0], enrolUsed: false };
    }
  });

  test("a code that names another hub's key is refused; so is a certificate that is not the pinned one", async () => {
    const forged = start({ key: code.privateKey, hubPublicKey: generateKeyPair().publicKey });
    await forged.start();
    await until(() => forged.refusal !== undefined, 'the refusal');
    assert.match(forged.refusal!, /no join code the hub knows/);
    forged.stop();
    const other = await generateTlsIdentity();
    const intercepted = start({ key: code.privateKey, hubPublicKey: hub.publicKey }, other.pin);
    await intercepted.start();
    await until(() => intercepted.refusal !== undefined, 'the refusal');
    assert.match(intercepted.refusal!, /not the pinned one/);
    intercepted.stop();
  });
});
