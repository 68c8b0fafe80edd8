import assert from 'node:assert/strict';
import { test } from 'node:test';
import { familiesIn, familyTopology, MATRIX_HUB, matrixIn, matrixTopology, renderFamilyMatrix, renderMatrix, type CellPath } from '../../../src/lab/nat-matrix.js';
import { uniqueLabName, withLab } from '../helpers.js';

/**
 * The outcome each cell must have, written out here independently of src/ (the eduVPN report's
 * Table 1, with the difference port-dependent filtering makes: a symmetric NAT's packets come from
 * a port nobody could predict, so only a peer that filters nothing (open, full cone) lets them in;
 * firewall and restricted filter by address and port, so those pairs need the relay).
 */
const want: Record<string, CellPath> = {
  'open/open': 'direct',
  'open/firewall': 'direct',
  'open/cone': 'direct',
  'open/restricted': 'direct',
  'open/symmetric': 'direct',
  'firewall/firewall': 'direct',
  'firewall/cone': 'direct',
  'firewall/restricted': 'direct',
  'firewall/symmetric': 'relay',
  'cone/cone': 'direct',
  'cone/restricted': 'direct',
  'cone/symmetric': 'direct',
  'restricted/restricted': 'direct',
  'restricted/symmetric': 'relay',
  'symmetric/symmetric': 'relay',
  // Issue 11's rows. A leaky router takes the port when the peer's punch arrives first, so against a
  // peer that filters by address and port it needs the punch ordered (TAG=leaky); against peers
  // that filter nothing the port change does not matter. symmetric+upnp is a symmetric NAT until
  // its router maps a port (TAG=portmap), then it is reachable like a full cone from anyone.
  // cgnat-sym is a home router behind a carrier NAT that maps per destination: a symmetric NAT
  // whose home router's UPnP could not help (it maps on the carrier's network only).
  'open/restricted-leaky': 'direct',
  'firewall/restricted-leaky': 'direct',
  'cone/restricted-leaky': 'direct',
  'restricted/restricted-leaky': 'direct',
  'symmetric/restricted-leaky': 'relay',
  // The matrix's routers share one internet link: a packet that leaves one leaky router reaches the
  // other next, so no order or TTL can keep the first punch off it (agent/punch-ttl.ts). With a
  // router between them (topologies.ispPair, test/lab/agent/leaky.test.ts) the pair goes direct.
  'restricted-leaky/restricted-leaky': 'relay',
  'open/symmetric+upnp': 'direct',
  'firewall/symmetric+upnp': 'direct',
  'cone/symmetric+upnp': 'direct',
  'restricted/symmetric+upnp': 'direct',
  'symmetric/symmetric+upnp': 'direct',
  'restricted-leaky/symmetric+upnp': 'direct',
  'symmetric+upnp/symmetric+upnp': 'direct',
  'open/cgnat-sym': 'direct',
  'firewall/cgnat-sym': 'relay',
  'cone/cgnat-sym': 'direct',
  'restricted/cgnat-sym': 'relay',
  'symmetric/cgnat-sym': 'relay',
  'restricted-leaky/cgnat-sym': 'relay',
  'symmetric+upnp/cgnat-sym': 'direct',
  'cgnat-sym/cgnat-sym': 'relay',
  // Issue 12: a node behind udp-blocked (no UDP out, TCP only to 80/443) reaches the hub over its
  // TLS stream on 443, and its pairs go through the relay with its side on that stream, whatever
  // the peer's NAT (its UDP cannot reach any peer directly).
  'open/udp-blocked': 'tcp-relay',
  'firewall/udp-blocked': 'tcp-relay',
  'cone/udp-blocked': 'tcp-relay',
  'restricted/udp-blocked': 'tcp-relay',
  'symmetric/udp-blocked': 'tcp-relay',
  'restricted-leaky/udp-blocked': 'tcp-relay',
  'symmetric+upnp/udp-blocked': 'tcp-relay',
  'cgnat-sym/udp-blocked': 'tcp-relay',
};


/** WGP2P_MATRIX_ONLY=PROFILE runs only the cells with that profile on a side (the whole matrix takes long). */
const only = process.env.WGP2P_MATRIX_ONLY;

test('NAT matrix: every pair of profiles gets the path Table 1 predicts, and traffic flows in every connected cell', async (t) => {
  await withLab(matrixTopology(uniqueLabName('mx')), async (lab) => {
    const cells = await matrixIn(lab, undefined, (c) => only === undefined || c.a === only || c.b === only);
    for (const line of renderMatrix(cells).split('\n')) t.diagnostic(line);
    const expected = Object.keys(want).filter((k) => only === undefined || k.split('/').includes(only));
    assert.deepEqual(expected.sort(), cells.map((c) => `${c.a}/${c.b}`).sort(), 'one cell per pair of profiles');
    const relay = new RegExp(`^${MATRIX_HUB.replaceAll('.', '\\.')}:\\d+$`);
    const failures: string[] = [];
    for (const c of cells) {
      const key = `${c.a}/${c.b}`;
      if (c.path !== want[key]) failures.push(`${key} (${c.nodes.join('-')}): ${c.path}, want ${want[key]}: ${c.reason ?? ''}`);
      if ((c.path === 'relay' || c.path === 'tcp-relay') && !relay.test(c.endpoint ?? '')) failures.push(`${key} sends to ${c.endpoint}, not to the relay on the hub`);
      // The udp-blocked side (the cell's second node) sends to its shim's port for the allocation.
      if (c.path === 'tcp-relay' && !/^127\.0\.0\.1:\d+$/.test(c.endpointB ?? '')) failures.push(`${key}: the side on the stream sends to ${c.endpointB}, not to its shim on loopback`);
      if (c.path === 'direct' && c.endpoint?.startsWith(`${MATRIX_HUB}:`)) failures.push(`${key} goes through the hub (${c.endpoint})`);
      // One reply may be lost while a relayed pair moves into the relay's kernel path.
      if ((c.path === 'direct' || c.path === 'relay' || c.path === 'tcp-relay') && c.replies < c.sent - 1) failures.push(`${key}: ${c.replies}/${c.sent} pings answered`);
      if (c.diagnosis) for (const line of [`${key} (${c.nodes.join('-')}) after lost pings:`, ...c.diagnosis.split('\n')]) t.diagnostic(line);
    }
    assert.deepEqual(failures, [], 'every cell as expected');
  });
});

/**
 * The eduVPN report's table of address families (section 6.9: "only between IPv4-only hosts and
 * IPv6-only hosts, peer to peer communication is not possible"), written out here independently of
 * src/: IPv4-only, dual-stack and IPv6-only hosts behind home routers (restricted IPv4 NAT, RFC 6092
 * stateful IPv6 firewall). Where both sides have IPv6 the pair goes direct over IPv6 first (no NAT,
 * both firewalls opened by the simultaneous send), also when both IPv4 NATs are symmetric; IPv4-only
 * with IPv6-only has no common family and goes through the hub's relay, which bridges them.
 */
const wantFamily: Record<string, { path: CellPath; family?: 4 | 6; candidate?: 'public4' | 'public6' }> = {
  'ipv4/ipv4': { path: 'direct', family: 4, candidate: 'public4' },
  'ipv4/dual': { path: 'direct', family: 4, candidate: 'public4' },
  'ipv4/ipv6': { path: 'relay' },
  'dual/dual': { path: 'direct', family: 6, candidate: 'public6' },
  'dual/ipv6': { path: 'direct', family: 6, candidate: 'public6' },
  'ipv6/ipv6': { path: 'direct', family: 6, candidate: 'public6' },
  'sym-dual/sym-dual': { path: 'direct', family: 6, candidate: 'public6' },
};

test('family matrix: IPv4-only, dual-stack and IPv6-only agents get the paths the eduVPN report predicts, direct over IPv6 first', async (t) => {
  await withLab(familyTopology(uniqueLabName('fx')), async (lab) => {
    const cells = await familiesIn(lab);
    for (const line of renderFamilyMatrix(cells).split('\n')) t.diagnostic(line);
    for (const c of cells) t.diagnostic(`${c.a}/${c.b} (${c.nodes.join('-')}): ${c.path}, family ${c.family}, candidate ${c.candidate}, endpoints ${c.endpoint} / ${c.endpointB}, ${c.replies}/${c.sent} pings${c.reason ? `, ${c.reason}` : ''}`);
    assert.deepEqual(Object.keys(wantFamily).sort(), cells.map((c) => `${c.a}/${c.b}`).sort(), 'one cell per pair of families');
    const failures: string[] = [];
    const check = (ok: boolean, what: string) => ok || failures.push(what);
    for (const c of cells) {
      const key = `${c.a}/${c.b}`;
      const w = wantFamily[key];
      const [x, y] = c.nodes;
      check(c.path === w.path, `${key} (${x}-${y}): path ${c.path}, want ${w.path} (${c.reason ?? ''})`);
      if (w.path === 'direct') {
        check(c.family === w.family, `${key}: the hub reports family ${c.family}, want ${w.family}`);
        check(c.candidate === w.candidate, `${key}: the hub reports candidate ${c.candidate}, want ${w.candidate}`);
        // Over IPv6 each side sends to the other's own address (no NAT); over IPv4 to its NAT, never the hub.
        if (w.family === 6) check(c.endpoint?.startsWith(`[${lab.address(y, 6)}]:`) === true, `${key}: ${x} sends to ${c.endpoint}, want ${y}'s own IPv6 address ${lab.address(y, 6)}`);
        else check(c.endpoint !== null && !c.endpoint.startsWith('203.0.113.2:') && !c.endpoint.startsWith('['), `${key}: ${x} sends to ${c.endpoint}, want ${y}'s IPv4 NAT`);
      }
      if (w.path === 'relay') {
        // The relay bridges: each side reaches it over the only family it has.
        check(/^203\.0\.113\.2:\d+$/.test(c.endpoint ?? ''), `${key}: the IPv4-only ${x} sends to ${c.endpoint}, want the hub's relay on 203.0.113.2`);
        check(/^\[2001:db8::2\]:\d+$/.test(c.endpointB ?? ''), `${key}: the IPv6-only ${y} sends to ${c.endpointB}, want the hub's relay on [2001:db8::2]`);
      }
      if (c.path === 'direct' || c.path === 'relay') check(c.replies >= c.sent - 1, `${key}: ${c.replies}/${c.sent} pings answered`);
    }
    assert.deepEqual(failures, [], 'every cell as the report predicts');
  });
});
