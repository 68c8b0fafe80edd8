import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { doctorReportSchema, hubDoctorReportSchema, type DoctorReport, type FamilyFacts } from '../../../src/core/doctor/report.js';
import { Scenario } from '../../../src/lab/scenario.js';
import { EXPECTED, PROBE_SERVERS, PROBE_SERVERS6, VERIFY_ROWS, verifyTopology, type Behaviour } from '../../../src/lab/truth-table.js';
import { uniqueLabName, withLab } from '../helpers.js';

/**
 * `wgp2p doctor` behind every profile of the lab's truth table (one lab, one router per row, as
 * `lab verify` builds it), against a real hub's STUN responder: its verdict must be the one the
 * truth table names for that profile, column by column. Then two agents whose pair is relayed
 * (symmetric x restricted): doctor on one of them explains that pair in words.
 */

const CLI = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));

/** The truth table's columns doctor measures too, from doctor's facts for the row's family. */
function asBehaviour(r: DoctorReport, f: FamilyFacts): Partial<Behaviour> {
  const proto = (p: 'upnp' | 'natpmp') => {
    const m = r.portMapping.find((x) => x.protocol === p);
    return m?.answered ? m.forwards : null;
  };
  return {
    udp: f.udp,
    mapping: f.mapping,
    portPreserved: f.portPreserved,
    addressKept: f.addressKept,
    filtering: f.filtering,
    // Doctor says "not measured" where nothing got through at all; the truth table says no.
    unsolicited: f.unsolicited ?? false,
    hairpin: f.hairpin,
    portSurvivesProbe: f.portAfterProbe,
    upnp: f.family === 4 ? proto('upnp') : null,
    natpmp: f.family === 4 ? proto('natpmp') : null,
  };
}

test('doctor behind every truth-table profile gives the verdict the truth table expects, and explains a relayed pair', async (t) => {
  await withLab(verifyTopology(uniqueLabName('doctor')), async (lab) => {
    const s = new Scenario(lab, 's1');
    await s.initHub();
    const hubArgs = ['--hub', PROBE_SERVERS.s1, '--hub', PROBE_SERVERS6.s1];
    const mismatches: string[] = [];
    const rows = VERIFY_ROWS.slice();
    const reports = new Map<string, DoctorReport>();
    const worker = async () => {
      for (let v = rows.shift(); v; v = rows.shift()) {
        const host = `${v.router ?? v.row}-a`;
        const out = await lab.exec(host, process.execPath, [CLI, 'doctor', ...hubArgs, '--json'], { timeoutMs: 60_000 });
        const r = doctorReportSchema.parse(JSON.parse(out.stdout));
        reports.set(v.row, r);
        const got = asBehaviour(r, v.family === 4 ? r.ipv4 : r.ipv6);
        const want = EXPECTED[v.row];
        for (const [k, value] of Object.entries(got) as [keyof Behaviour, unknown][]) {
          if (value !== want[k]) mismatches.push(`${v.row} (${v.profile}, IPv${v.family}) ${k}: doctor says ${String(value)}, the truth table ${String(want[k])}`);
        }
        t.diagnostic(`${v.row}: ${r.tookMs} ms; ${r.summary.filter((l) => l.startsWith(`IPv${v.family}`)).join(' | ')}`);
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    assert.deepEqual(mismatches, [], 'doctor agrees with the truth table');

    // What it means, in words a user reads: a symmetric NAT is relayed with home routers, unless a port is mapped.
    const sym = reports.get('symmetric')!;
    assert.deepEqual(sym.outlook.find((o) => o.peer.startsWith('home routers'))?.path, 'relay');
    assert.deepEqual(sym.outlook.find((o) => o.peer.startsWith('symmetric NATs whose router maps'))?.path, 'direct');
    const upnp = reports.get('upnp')!;
    assert.ok(upnp.portMapping.find((m) => m.protocol === 'pcp')?.answered, 'the upnp router answers PCP too');
    assert.equal(upnp.outlook.find((o) => o.peer.startsWith('symmetric NATs (many'))?.path, 'direct', 'a router that maps a port takes symmetric peers directly');
    // No UDP at all: WireGuard rides the hub's TLS stream, so every pair is relayed over it (issue 12).
    const blocked = reports.get('udpblocked')!.outlook[0];
    assert.equal(blocked.path, 'relay');
    assert.match(blocked.why, /TLS stream .*tcp-relay/);

    // On an agent: the hub's knowledge explains why its pair is relayed.
    await s.addNode('sy', 'agent', 'symmetric-b');
    await s.addNode('re', 'agent', 'restricted-b');
    await s.startAgent('sy');
    await s.startAgent('re');
    await s.waitPath('sy', 're', 'relay', 30_000);
    const out = await lab.exec('symmetric-b', process.execPath, [CLI, 'doctor', '--config', `${s.dir}/nodes/sy.agent.json`, '--interface', s.nodes.get('sy')!.ifname, '--json'], { timeoutMs: 60_000 });
    const r = doctorReportSchema.parse(JSON.parse(out.stdout));
    t.diagnostic(JSON.stringify({ wireguard: r.wireguard, pairs: r.pairs }));
    assert.equal(r.node, 'sy');
    assert.equal(typeof r.wireguard?.listenPort, 'number', 'WireGuard port read');
    assert.equal(typeof r.wireguard?.hubHandshakeAgeMs, 'number', 'a handshake with the hub peer');
    // The hub and the relay, two observers of WireGuard's own port, see two ports: a NAT that maps per destination.
    assert.ok(r.wireguard?.hubSeen && r.wireguard.relaySeen, `both observers saw it: ${r.wireguard?.hubSeen} / ${r.wireguard?.relaySeen}`);
    assert.equal(r.wireguard.mapping, 'dependent');
    const pair = r.pairs.find((p) => p.pair.includes('sy') && p.pair.includes('re'));
    assert.ok(pair, 'the relayed pair is explained');
    assert.match(pair.explanation, /relayed: sy's NAT maps per destination/);
    assert.match(pair.explanation, /re's router filters by address and port/);
    // On the hub, the same pair from the hub's knowledge alone.
    const onHub = hubDoctorReportSchema.parse(JSON.parse((await s.cli(undefined, ['doctor', '--dir', s.dir, '--json'])).stdout));
    t.diagnostic(JSON.stringify(onHub));
    assert.match(onHub.pairs.find((p) => p.pair === pair.pair)?.explanation ?? '', /relayed: sy's NAT maps per destination .*re's router filters by address and port/);

    // The issue's own example: a phone behind a carrier-like symmetric NAT, a device behind a home router.
    await s.addNode('ph', 'client', 'symmetric-a');
    await s.startClient('ph');
    let phone: string | undefined;
    await s.waitFor(async () => {
      const h = hubDoctorReportSchema.parse(JSON.parse((await s.cli(undefined, ['doctor', '--dir', s.dir, '--json'])).stdout));
      phone = h.pairs.find((p) => p.pair === 'ph <-> re')?.explanation;
      return phone !== undefined;
    }, 20_000, 're to report its path to the phone as impossible');
    t.diagnostic(phone!);
    assert.match(phone!, /^ph <-> re not direct: direct impossible from this network \(its NAT changed the port/);
    assert.match(phone!, /re's router filters by address and port/, 'what the hub learned of re from the relayed agent pair');
  });
});
