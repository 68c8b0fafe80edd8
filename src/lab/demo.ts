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
export interface DemoFigures {
  joinMs: number;
  roamMs: number;
  /** The laptop's `wgp2p join` started -> first ping reply from the device. */
  meshJoinMs: number;
  /** The laptop moved behind a symmetric NAT -> the device answers through the relay. */
  toRelayMs: number;
  /** The laptop came back -> the pair is direct again. */
  backToDirectMs: number;
}

export async function runDemo(topologyFile: string, hooks: DemoHooks): Promise<DemoFigures> {
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
      const onDevice = (await (await s.device(device.ifname)).get()).peers.find((p) => p.publicKey === phoneKey);
      const hubDev = await (await s.device(s.hubIf)).get();
      const hubPeer = (k: string) => hubDev.peers.find((p) => p.publicKey === k);
      const age = (ms: number | undefined) => (ms ? now - ms : null);
      const status = (await s.hubStatus()).nodes.find((n) => n.name === 'phone');
      return [
        { pair: 'phone <-> device', path: status?.paths?.[0]?.path ?? 'unknown', timeToPathMs: timeToDirect, handshakeAgeMs: age(onDevice?.lastHandshakeMs), endpoint: onDevice?.endpoint?.toString() ?? null },
        { pair: 'phone <-> hub', path: 'direct (control)', timeToPathMs: null, handshakeAgeMs: age(hubPeer(phoneKey)?.lastHandshakeMs), endpoint: hubPeer(phoneKey)?.endpoint?.toString() ?? null },
        { pair: 'device <-> hub', path: 'direct (control)', timeToPathMs: null, handshakeAgeMs: age(hubPeer(deviceKey)?.lastHandshakeMs), endpoint: hubPeer(deviceKey)?.endpoint?.toString() ?? null },
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

    // The mesh: a second agent, enrolled with a join code, and its path to the device.
    hooks.step('a laptop joins with a one-line code: "wgp2p node add laptop --agent --join" on the hub, "wgp2p join CODE" on the laptop');
    const code = await s.joinCode('laptop');
    let t = performance.now();
    const laptop = await s.join('laptop', 'laptop', code);
    await msUntilPingReply(lab.ns(laptop.host), device.address, 20_000);
    const meshJoinMs = Math.round(performance.now() - t);
    const meshRows = async (timeToPath: number): Promise<DemoRow[]> => {
      const deviceKey = await s.publicKey('device');
      const pair = await s.pair('device', 'laptop');
      const onLaptop = (await (await s.device(laptop.ifname)).get()).peers.find((p) => p.publicKey === deviceKey);
      const path = pair ? (pair.mode === 'relay' ? 'relay' : pair.mode) + (pair.attempting ? ' (trying direct)' : '') : 'unknown';
      return [{ pair: 'laptop <-> device', path, timeToPathMs: timeToPath, handshakeAgeMs: onLaptop?.lastHandshakeMs ? Date.now() - onLaptop.lastHandshakeMs : null, endpoint: onLaptop?.endpoint?.toString() ?? null }];
    };
    await s.waitPath('device', 'laptop', 'direct');
    hooks.table(await meshRows(meshJoinMs), `laptop joined: first reply from the device ${meshJoinMs} ms after "wgp2p join"`);

    hooks.step('the laptop moves to a mobile network behind a symmetric NAT: no direct path to a home NAT, the hub relays');
    t = performance.now();
    await lab.moveHost('laptop', 'mobile', undefined, { rebind: false });
    await s.waitPath('device', 'laptop', 'relay', 20_000);
    await msUntilPingReply(lab.ns(laptop.host), device.address, 20_000);
    const toRelayMs = Math.round(performance.now() - t);
    hooks.table(await meshRows(toRelayMs), `laptop on the mobile network: the device answers through the relay, ${toRelayMs} ms after the move`);

    hooks.step('the laptop comes back to the office: the pair goes direct again by itself');
    t = performance.now();
    await lab.moveHost('laptop', 'office', '192.168.30.50', { rebind: false });
    await s.waitPath('device', 'laptop', 'direct', 20_000);
    const backToDirectMs = Math.round(performance.now() - t);
    hooks.table(await meshRows(backToDirectMs), `laptop back in the office: direct again ${backToDirectMs} ms after the move`);
    return { joinMs, roamMs, meshJoinMs, toRelayMs, backToDirectMs };
  } finally {
    hooks.step('tearing the lab down');
    await lab.down();
  }
}
