import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getDevice } from '../../../src/core/wireguard/uapi.js';
import { Scenario } from '../../../src/lab/scenario.js';
import { natPair } from '../../../src/lab/topologies.js';
import { uniqueLabName, withLab } from '../helpers.js';

/**
 * Two agents meet for the first time behind two home NATs, each pinging the other from the
 * start (traffic that, without roles, makes WireGuard initiate whenever it has an endpoint).
 * The pair must come up with exactly one handshake initiation, from one side, answered by the
 * other: two initiations are what crosses and stalls for 5 s (src/agent/attempt.ts).
 *
 * No timing is asserted; WireGuard's byte counters are. They count every message the peer entry
 * sent or took in: an initiation is 148 bytes, a response 92, and every transport message
 * (keepalive or data) 32 + a multiple of 16, since WireGuard pads what it encrypts to 16. So a
 * peer's tx modulo 16 is 4 per initiation plus 12 per response: 4 for the initiator (one
 * initiation, no response), 12 for the responder (one response, no initiation). Without roles
 * the side that sent first also answered the other's initiation (4 + 12 = 0 modulo 16), and a
 * crossing leaves both at 0.
 */
test('a pair that meets for the first time has one handshake: one initiation from one side, one response from the other', async () => {
  await withLab(natPair(uniqueLabName('hsroles'), 'restricted'), async (lab) => {
    const s = new Scenario(lab, 'relay');
    await s.initHub();
    const a = await s.addNode('a', 'agent', 'a');
    const b = await s.addNode('b', 'agent', 'b');
    const [keyA, keyB] = [await s.publicKey('a'), await s.publicKey('b')];
    // Both interfaces up before either agent runs, so both pings are under way when the attempt starts.
    await s.startAgent('a', { wait: false });
    await s.startAgent('b', { wait: false });
    const pings = [lab.exec('a', 'ping', ['-n', '-q', '-i', '0.05', '-w', '15', b.address], { allowFail: true, timeoutMs: 25_000 }), lab.exec('b', 'ping', ['-n', '-q', '-i', '0.05', '-w', '15', a.address], { allowFail: true, timeoutMs: 25_000 })];
    await s.waitPath('a', 'b', 'direct', 15_000);
    const replies = await Promise.all(pings);
    assert.ok(replies.every((r) => / [1-9]\d* received/.test(r.stdout)), `both pings were answered: ${replies.map((r) => r.stdout.trim().split('\n').at(-2)).join(' / ')}`);

    const onA = (await getDevice(a.ifname)).peers.find((p) => p.publicKey === keyB)!;
    const onB = (await getDevice(b.ifname)).peers.find((p) => p.publicKey === keyA)!;
    const handshakes = (tx: number) => ({ 4: 'one initiation', 12: 'one response', 0: 'an initiation and a response (or none)', 8: 'two initiations or two responses' })[tx % 16] ?? `tx ${tx}`;
    const seen = `a sent ${handshakes(onA.txBytes)} (tx ${onA.txBytes}, rx ${onA.rxBytes}), b sent ${handshakes(onB.txBytes)} (tx ${onB.txBytes}, rx ${onB.rxBytes})`;
    assert.deepEqual([onA.txBytes % 16, onB.txBytes % 16].sort((x, y) => x - y), [4, 12], seen);
    // And what each took in mirrors it: the initiator one response, the responder one initiation.
    const initiatorRx = onA.txBytes % 16 === 4 ? onA.rxBytes : onB.rxBytes;
    const responderRx = onA.txBytes % 16 === 4 ? onB.rxBytes : onA.rxBytes;
    assert.equal(initiatorRx % 16, 12, seen);
    assert.equal(responderRx % 16, 4, seen);
    console.log(seen);
  });
});
