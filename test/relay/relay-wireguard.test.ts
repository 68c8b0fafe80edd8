import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setDevice } from '../../src/core/wireguard/uapi.js';
import { natPair } from '../../src/lab/topologies.js';
import { msUntilPingReply, startWireGuard, waitForHandshake } from '../../src/lab/wireguard.js';
import { uniqueIfname, uniqueLabName, withLab } from '../lab/helpers.js';

const RELAY_HOST = fileURLToPath(new URL('../../src/lab/relay-host.js', import.meta.url));

test('real WireGuard between two symmetric NATs through the relay', async () => {
  const aIf = uniqueIfname('wra');
  const bIf = uniqueIfname('wrb');
  await withLab(natPair(uniqueLabName('relay'), 'symmetric'), async (lab) => {
    const a = await startWireGuard(lab.ns('a'), aIf, { listenPort: 51820, address: '10.77.0.1/24' });
    await lab.recordWireGuard('a', aIf);
    const b = await startWireGuard(lab.ns('b'), bIf, { listenPort: 51820, address: '10.77.0.2/24' });
    await lab.recordWireGuard('b', bIf);
    lab.spawn('relay', 'relay', process.execPath, [RELAY_HOST, '--address', '203.0.113.2', '--ports', '47000-47010', '--allocate', `ab,${a.publicKey},203.0.113.10,${b.publicKey},203.0.113.20`]);
    await new Promise((r) => setTimeout(r, 500));

    // Direct cannot work between two symmetric NATs; through the relay it must.
    await setDevice(aIf, { peers: [{ publicKey: b.publicKey, endpoint: '203.0.113.2:47000', allowedIps: ['10.77.0.2/32'], persistentKeepalive: 0 }, { publicKey: b.publicKey, persistentKeepalive: 25 }] });
    await setDevice(bIf, { peers: [{ publicKey: a.publicKey, endpoint: '203.0.113.2:47001', allowedIps: ['10.77.0.1/32'], persistentKeepalive: 0 }, { publicKey: a.publicKey, persistentKeepalive: 25 }] });
    await waitForHandshake(aIf, b.publicKey, 15_000);
    await msUntilPingReply(lab.ns('a'), '10.77.0.2', 5000);
    // The pair moves into the kernel right after both sides latched; a datagram in flight during
    // that handover may be lost (WireGuard copes). Count only after it.
    await new Promise((res) => setTimeout(res, 1000));
    const r = await lab.exec('a', 'ping', ['-n', '-q', '-c', '20', '-i', '0.02', '10.77.0.2']);
    assert.match(r.stdout, /20 received/);

    // The pings were forwarded by the kernel fast path, and counted per direction.
    await new Promise((res) => setTimeout(res, 600));
    const log = readFileSync(join(lab.logDir, 'relay.relay.log'), 'utf8').trim().split('\n');
    assert.match(log[0], /"kernel":true/);
    const [stats] = JSON.parse(log[log.length - 1]) as { aToB: { packets: number }; bToA: { packets: number }; a: { latched: string }; b: { latched: string } }[];
    assert.ok(stats.aToB.packets >= 20 && stats.bToA.packets >= 20, JSON.stringify(stats));
    assert.match(stats.a.latched, /^203\.0\.113\.10:\d+$/);
    assert.match(stats.b.latched, /^203\.0\.113\.20:\d+$/);
  });
});
