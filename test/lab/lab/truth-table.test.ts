import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Behaviour } from '../../../src/lab/truth-table.js';
import { verifyProfiles } from '../../../src/lab/verify.js';
import { uniqueLabName } from '../helpers.js';

// The behaviour each profile is named for, written out here independently of src/, so that a change
// to the lab's rules or to its expectations cannot make this test agree with itself.
const Y = true;
const N = false;
const _ = null;
const want: Record<string, Behaviour> = {
  // IPv4, measured over IPv4.
  //           udp     tcp           mapping                kept              addr kept        filtering                  unsolicited     hairpin     survives              upnp     natpmp     pcp     punch
  open:       { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, addressKept: Y, filtering: 'independent', unsolicited: Y, hairpin: _, portSurvivesProbe: _, upnp: _, natpmp: _, pcp: _, punch: _ },
  firewall:   { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, addressKept: Y, filtering: 'address+port', unsolicited: N, hairpin: _, portSurvivesProbe: _, upnp: _, natpmp: _, pcp: _, punch: _ },
  cone:       { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, addressKept: N, filtering: 'independent', unsolicited: Y, hairpin: N, portSurvivesProbe: Y, upnp: _, natpmp: _, pcp: _, punch: _ },
  restricted: { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, addressKept: N, filtering: 'address+port', unsolicited: N, hairpin: N, portSurvivesProbe: Y, upnp: _, natpmp: _, pcp: _, punch: _ },
  leaky:      { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, addressKept: N, filtering: 'address+port', unsolicited: N, hairpin: N, portSurvivesProbe: N, upnp: _, natpmp: _, pcp: _, punch: _ },
  symmetric:  { udp: Y, tcp: 'all', mapping: 'dependent', portPreserved: N, addressKept: N, filtering: 'address+port', unsolicited: N, hairpin: N, portSurvivesProbe: N, upnp: _, natpmp: _, pcp: _, punch: _ },
  udpblocked: { udp: N, tcp: '80/443', mapping: _, portPreserved: _, addressKept: _, filtering: _, unsolicited: N, hairpin: _, portSurvivesProbe: _, upnp: _, natpmp: _, pcp: _, punch: _ },
  cgnat:      { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, addressKept: N, filtering: 'address+port', unsolicited: N, hairpin: N, portSurvivesProbe: Y, upnp: _, natpmp: _, pcp: _, punch: _ },
  hairpin:    { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, addressKept: N, filtering: 'address+port', unsolicited: N, hairpin: Y, portSurvivesProbe: Y, upnp: _, natpmp: _, pcp: _, punch: _ },
  upnp:       { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, addressKept: N, filtering: 'address+port', unsolicited: N, hairpin: N, portSurvivesProbe: Y, upnp: Y, natpmp: Y, pcp: Y, punch: _ },
  // IPv6 (no NAT66: the host's own address and port are what everyone sees), measured over IPv6.
  // RFC 6092's stateful firewall lets in only replies from the address and port the host sent to,
  // and a simultaneous send with a host behind another such firewall gets through (the punch).
  stateful6:  { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, addressKept: Y, filtering: 'address+port', unsolicited: N, hairpin: _, portSurvivesProbe: _, upnp: _, natpmp: _, pcp: _, punch: Y },
  open6:      { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, addressKept: Y, filtering: 'independent', unsolicited: Y, hairpin: _, portSurvivesProbe: _, upnp: _, natpmp: _, pcp: _, punch: Y },
  v6only:     { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, addressKept: Y, filtering: 'address+port', unsolicited: N, hairpin: _, portSurvivesProbe: _, upnp: _, natpmp: _, pcp: _, punch: Y },
  // The family that is not there does not leak: IPv6-only hosts over IPv4, a router without IPv6 over IPv6.
  v6only4:    { udp: N, tcp: 'none', mapping: _, portPreserved: _, addressKept: _, filtering: _, unsolicited: N, hairpin: _, portSurvivesProbe: _, upnp: _, natpmp: _, pcp: _, punch: _ },
  nov6:       { udp: N, tcp: 'none', mapping: _, portPreserved: _, addressKept: _, filtering: _, unsolicited: N, hairpin: _, portSurvivesProbe: _, upnp: _, natpmp: _, pcp: _, punch: _ },
};
const family: Record<string, 4 | 6> = { stateful6: 6, open6: 6, v6only: 6, nov6: 6 };

test('every NAT profile and IPv6 firewall behaves as named, measured from outside with plain UDP', async () => {
  const results = await verifyProfiles({ name: uniqueLabName('tt') });
  assert.deepEqual(results.map((r) => r.row).sort(), Object.keys(want).sort(), 'one row per profile');
  // Every row is checked before failing, so that one run shows everything that is off.
  const off: string[] = [];
  const columns = (x: Behaviour, y: Behaviour) => (Object.keys(y) as (keyof Behaviour)[]).filter((k) => x[k] !== y[k]).map((k) => `${k} ${String(x[k])} (want ${String(y[k])})`);
  for (const r of results) {
    if (r.family !== (family[r.row] ?? 4)) off.push(`${r.row} is measured over IPv${r.family}, want IPv${family[r.row] ?? 4}`);
    const measured = columns(r.measured, want[r.row]);
    if (measured.length) off.push(`${r.profile} (${r.row}, IPv${r.family}) does not behave as named: ${measured.join(', ')}`);
    const expected = columns(r.expected, want[r.row]);
    if (expected.length) off.push(`lab verify's printed expectation for ${r.row} disagrees with this table: ${expected.join(', ')}`);
  }
  assert.deepEqual(off, []);
});
