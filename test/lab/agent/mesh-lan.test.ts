import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Scenario } from '../../../src/lab/scenario.js';
import type { TopologyInput } from '../../../src/lab/topology.js';
import { msUntilPingReply } from '../../../src/lab/wireguard.js';
import { uniqueLabName, withLab } from '../helpers.js';

/**
 * Two agents behind one home router, four ways: hairpin off or on, and the LAN open or isolated
 * (client isolation, as on guest Wi-Fi). And agents behind carrier-grade NAT (two NATs deep).
 */
const homes = [
  { router: 'plain', hairpin: false, isolated: false, want: 'lan' },
  { router: 'hairpin', hairpin: true, isolated: false, want: 'lan' },
  { router: 'guest', hairpin: true, isolated: true, want: 'public' },
  { router: 'locked', hairpin: false, isolated: true, want: 'relay' },
] as const;

function topology(name: string): TopologyInput {
  return {
    name,
    routers: [
      ...homes.map((h, i) => ({ name: h.router, profile: 'restricted' as const, hairpin: h.hairpin, wan: `203.0.113.${10 + i}`, lan: `192.168.${10 + i}.0/24` })),
      { name: 'cg1', profile: 'cgnat' as const, wan: '203.0.113.30', lan: '192.168.30.0/24', carrierLan: '100.64.1.0/24' },
      { name: 'cg2', profile: 'cgnat' as const, wan: '203.0.113.31', lan: '192.168.31.0/24', carrierLan: '100.64.2.0/24' },
      { name: 'home', profile: 'restricted' as const, wan: '203.0.113.32', lan: '192.168.32.0/24' },
    ],
    hosts: [
      { name: 'hub', network: 'internet', address: '203.0.113.2' },
      ...homes.flatMap((h, i) => [
        { name: `${h.router[0]}1`, network: h.router, address: `192.168.${10 + i}.2` },
        { name: `${h.router[0]}2`, network: h.router, address: `192.168.${10 + i}.3` },
      ]),
      { name: 'n1', network: 'cg1', address: '192.168.30.2' },
      { name: 'n2', network: 'cg2', address: '192.168.31.2' },
      { name: 'k1', network: 'home', address: '192.168.32.2' },
    ],
  };
}

test('peers behind one router use the LAN (hairpin off or on), the router\'s public address when the LAN is isolated, else the relay; cgnat goes direct', async (t) => {
  await withLab(topology(uniqueLabName('mlan')), async (lab) => {
    for (const h of homes) {
      // Client isolation (guest Wi-Fi): the router's bridge forwards no frame from one host to the
      // other; what the router itself routes (hairpin) still goes out. (Linux's own port isolation
      // would drop the hairpinned packets too, because they entered on an isolated port.)
      const [x, y] = [`${h.router[0]}1`, `${h.router[0]}2`];
      if (h.isolated) await lab.exec(h.router, 'nft', ['-f', '-'], { input: `table bridge isolation {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n  iifname "${x}" oifname "${y}" drop\n  iifname "${y}" oifname "${x}" drop\n }\n}\n` });
    }
    const s = new Scenario(lab);
    await s.initHub();
    const agents: [string, string][] = [...homes.map((h) => [`${h.router[0]}1`, h.router] as [string, string]), ...homes.map((h) => [`${h.router[0]}2`, h.router] as [string, string])];
    for (const [n, group] of agents) await s.addNode(n, 'agent', n, ['--groups', group]);
    await s.addNode('n1', 'agent', 'n1', ['--groups', 'cg']);
    await s.addNode('n2', 'agent', 'n2', ['--groups', 'cg']);
    await s.addNode('k1', 'agent', 'k1', ['--groups', 'cg']);
    for (const n of [...agents.map(([a]) => a), 'n1', 'n2', 'k1']) await s.startAgent(n);
    const key = (n: string) => s.publicKey(n);

    for (const h of homes) {
      const [x, y] = [`${h.router[0]}1`, `${h.router[0]}2`];
      const st = await s.waitPath(x, y, h.want === 'relay' ? 'relay' : 'direct', 20_000);
      // Read the endpoint between two statuses that show no attempt: a relayed pair's retry points
      // at the candidate for its 50 ms hold, and a read that lands there says nothing about the path.
      let endpoint = '';
      for (let i = 0; i < 20; i++) {
        if ((await s.pair(x, y))?.attempting) continue;
        endpoint = (await s.endpointOn(s.nodes.get(x)!.ifname, await key(y))) ?? '';
        if (!(await s.pair(x, y))?.attempting) break;
      }
      t.diagnostic(`${h.router} (hairpin ${h.hairpin ? 'on' : 'off'}, LAN ${h.isolated ? 'isolated' : 'open'}): ${st.mode} ${st.via ?? ''} via ${endpoint} after ${st.firstPathMs} ms`);
      // The pair's history says why, when CI shows only the failure.
      const why = JSON.stringify(st.history);
      if (h.want === 'lan') assert.equal(endpoint, `${lab.address(y)}:51820`, `${h.router}: ${x} reaches ${y} at its LAN address; history ${why}`);
      if (h.want === 'public') assert.match(endpoint, new RegExp(`^${lab.publicAddress(y).replace(/\./g, '\\.')}:\\d+$`), `${h.router}: ${x} reaches ${y} through the router's public address (hairpin); history ${why}`);
      if (h.want === 'relay') assert.match(endpoint, /^203\.0\.113\.2:\d+$/, `${h.router}: ${x} reaches ${y} through the relay; history ${why}`);
      await msUntilPingReply(lab.ns(x), s.nodes.get(y)!.address, 5000);
    }

    // Carrier-grade NAT: two NATs deep, both keep the port, so hole punching works through both.
    for (const [x, y] of [['n1', 'n2'], ['n1', 'k1']] as const) {
      const st = await s.waitPath(x, y, 'direct', 20_000);
      const endpoint = (await s.endpointOn(s.nodes.get(x)!.ifname, await key(y))) ?? '';
      t.diagnostic(`cgnat ${x}-${y}: ${st.mode} via ${endpoint} after ${st.firstPathMs} ms`);
      assert.match(endpoint, new RegExp(`^${lab.publicAddress(y).replace(/\./g, '\\.')}:51820$`));
      await msUntilPingReply(lab.ns(x), s.nodes.get(y)!.address, 5000);
    }
  });
});
