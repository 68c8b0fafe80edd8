import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setDevice } from '../../src/core/wireguard/uapi.js';
import type { TopologyInput } from '../../src/lab/topology.js';
import { msUntilPingReply, startWireGuard, waitForHandshake } from '../../src/lab/wireguard.js';
import { uniqueIfname, uniqueLabName, withLab } from '../lab/helpers.js';

const RELAY = fileURLToPath(new URL('../../src/relay/relay.js', import.meta.url));

export const symmetricPair = (name: string): TopologyInput => ({
  name,
  routers: [
    { name: 'mobile1', profile: 'symmetric', wan: '203.0.113.10', lan: '192.168.10.0/24' },
    { name: 'mobile2', profile: 'symmetric', wan: '203.0.113.20', lan: '192.168.20.0/24' },
  ],
  hosts: [
    { name: 'relay', network: 'internet', address: '203.0.113.2' },
    { name: 'a', network: 'mobile1', address: '192.168.10.2' },
    { name: 'b', network: 'mobile2', address: '192.168.20.2' },
  ],
});

/** Runs a relay with one allocation inside a lab host; ports are the first two of the range. */
export function relayScript(aKey: string, bKey: string): string {
  return `import { Relay } from ${JSON.stringify(RELAY)};
const r = new Relay({ address: '203.0.113.2', portMin: 47000, portMax: 47010 });
await r.allocate('ab', { publicKey: ${JSON.stringify(aKey)}, ip: '203.0.113.10' }, { publicKey: ${JSON.stringify(bKey)}, ip: '203.0.113.20' });
setInterval(() => console.log(JSON.stringify(r.stats())), 500);`;
}

test('real WireGuard between two symmetric NATs through the relay', async () => {
  const aIf = uniqueIfname('wra');
  const bIf = uniqueIfname('wrb');
  await withLab(symmetricPair(uniqueLabName('relay')), async (lab) => {
    const a = await startWireGuard(lab.ns('a'), aIf, { listenPort: 51820, address: '10.77.0.1/24' });
    await lab.recordWireGuard('a', aIf);
    const b = await startWireGuard(lab.ns('b'), bIf, { listenPort: 51820, address: '10.77.0.2/24' });
    await lab.recordWireGuard('b', bIf);
    lab.spawn('relay', 'relay', process.execPath, ['--input-type=module', '-e', relayScript(a.publicKey, b.publicKey)]);
    await new Promise((r) => setTimeout(r, 500));

    // Direct cannot work between two symmetric NATs; through the relay it must.
    await setDevice(aIf, { peers: [{ publicKey: b.publicKey, endpoint: '203.0.113.2:47000', allowedIps: ['10.77.0.2/32'], persistentKeepalive: 0 }, { publicKey: b.publicKey, persistentKeepalive: 25 }] });
    await setDevice(bIf, { peers: [{ publicKey: a.publicKey, endpoint: '203.0.113.2:47001', allowedIps: ['10.77.0.1/32'], persistentKeepalive: 0 }, { publicKey: a.publicKey, persistentKeepalive: 25 }] });
    await waitForHandshake(aIf, b.publicKey, 15_000);
    await msUntilPingReply(lab.ns('a'), '10.77.0.2', 5000);
    const r = await lab.exec('a', 'ping', ['-n', '-q', '-c', '20', '-i', '0.02', '10.77.0.2']);
    assert.match(r.stdout, /20 received/);
  });
});
