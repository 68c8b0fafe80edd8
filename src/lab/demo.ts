import { getDevice } from '../core/wireguard/uapi.js';
import { Lab } from './lab.js';
import { Scenario } from './scenario.js';
import { loadTopology } from './topology.js';
import { msUntilPingReply } from './wireguard.js';

export interface DemoRow {
  pair: string;
  path: string;
  timeToPathMs: number | null;
  handshakeAgeMs: number | null;
  endpoint: string | null;
}

export interface DemoHooks {
  step: (message: string) => void;
  table: (rows: DemoRow[], title: string) => void;
}

/**
 * The main job: seed 000 with real NATs; a hub, an agent on the device, a phone-like client that
 * runs nothing but WireGuard; the phone goes direct, roams once, goes direct again; all torn down.
 */
export async function runDemo(topologyFile: string, hooks: DemoHooks): Promise<{ joinMs: number; roamMs: number }> {
  const plan = await loadTopology(topologyFile);
  plan.name = `demo${process.pid % 10000}`;
  hooks.step('building the seed-000 lab: public hub, device behind a home NAT, client behind another');
  const lab = await Lab.up(plan);
  try {
    const s = new Scenario(lab);
    hooks.step('hub: wgp2p hub init, wg-quick up hub.conf, wgp2p hub run; device: wgp2p node add device --agent, wg-quick up device.conf, wgp2p agent run');
    const device = await s.hubDeviceAndPhone();
    hooks.step('client: wgp2p node add phone --client, then only wg-quick up phone.conf (no wgp2p on the phone)');
    const joinMs = (await s.startClient('phone', { pingTarget: device.address }))!;
    const phone = s.nodes.get('phone')!;
    const rows = async (timeToDirect: number): Promise<DemoRow[]> => {
      const phoneKey = await s.publicKey('phone');
      const deviceKey = await s.publicKey('device');
      const now = Date.now();
      const onDevice = (await getDevice(device.ifname)).peers.find((p) => p.publicKey === phoneKey);
      const hubDev = await getDevice(s.hubIf);
      const hubPeer = (k: string) => hubDev.peers.find((p) => p.publicKey === k);
      const age = (ms: number | undefined) => (ms ? now - ms : null);
      const status = (await s.hubStatus()).nodes.find((n) => n.name === 'phone');
      return [
        { pair: 'phone <-> device', path: status?.paths?.[0]?.path ?? 'unknown', timeToPathMs: timeToDirect, handshakeAgeMs: age(onDevice?.lastHandshakeMs), endpoint: onDevice?.endpoint ?? null },
        { pair: 'phone <-> hub', path: 'direct (control)', timeToPathMs: null, handshakeAgeMs: age(hubPeer(phoneKey)?.lastHandshakeMs), endpoint: hubPeer(phoneKey)?.endpoint ?? null },
        { pair: 'device <-> hub', path: 'direct (control)', timeToPathMs: null, handshakeAgeMs: age(hubPeer(deviceKey)?.lastHandshakeMs), endpoint: hubPeer(deviceKey)?.endpoint ?? null },
      ];
    };
    for (let i = 0; i < 3; i++) {
      hooks.table(await rows(joinMs), `phone started: first direct reply from the device after ${joinMs} ms`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    hooks.step('the phone roams from the cafe network to the office network');
    const t0 = performance.now();
    await lab.moveHost(phone.host, 'office');
    await msUntilPingReply(lab.ns(phone.host), device.address, 20_000);
    const roamMs = Math.round(performance.now() - t0);
    for (let i = 0; i < 3; i++) {
      hooks.table(await rows(roamMs), `phone roamed: direct again after ${roamMs} ms`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    return { joinMs, roamMs };
  } finally {
    hooks.step('tearing the lab down');
    await lab.down();
  }
}
