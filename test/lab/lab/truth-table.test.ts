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
const want: Record<string, Omit<Behaviour, 'tcp'> & { tcp: Behaviour['tcp'] }> = {
  //           udp  tcp        mapping         kept  filtering        unsolicited hairpin survives upnp natpmp
  open:       { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, filtering: 'independent', unsolicited: Y, hairpin: _, portSurvivesProbe: _, upnp: _, natpmp: _ },
  firewall:   { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, filtering: 'address+port', unsolicited: N, hairpin: _, portSurvivesProbe: _, upnp: _, natpmp: _ },
  cone:       { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, filtering: 'independent', unsolicited: Y, hairpin: N, portSurvivesProbe: Y, upnp: _, natpmp: _ },
  restricted: { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, filtering: 'address+port', unsolicited: N, hairpin: N, portSurvivesProbe: Y, upnp: _, natpmp: _ },
  leaky:      { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, filtering: 'address+port', unsolicited: N, hairpin: N, portSurvivesProbe: N, upnp: _, natpmp: _ },
  symmetric:  { udp: Y, tcp: 'all', mapping: 'dependent', portPreserved: N, filtering: 'address+port', unsolicited: N, hairpin: N, portSurvivesProbe: N, upnp: _, natpmp: _ },
  udpblocked: { udp: N, tcp: '80/443', mapping: _, portPreserved: _, filtering: _, unsolicited: N, hairpin: _, portSurvivesProbe: _, upnp: _, natpmp: _ },
  cgnat:      { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, filtering: 'address+port', unsolicited: N, hairpin: N, portSurvivesProbe: Y, upnp: _, natpmp: _ },
  hairpin:    { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, filtering: 'address+port', unsolicited: N, hairpin: Y, portSurvivesProbe: Y, upnp: _, natpmp: _ },
  upnp:       { udp: Y, tcp: 'all', mapping: 'independent', portPreserved: Y, filtering: 'address+port', unsolicited: N, hairpin: N, portSurvivesProbe: Y, upnp: Y, natpmp: Y },
};

test('every NAT profile behaves as named, measured from outside with plain UDP', async () => {
  const results = await verifyProfiles({ name: uniqueLabName('tt') });
  assert.deepEqual(results.map((r) => r.row).sort(), Object.keys(want).sort(), 'one row per profile');
  for (const r of results) {
    assert.deepEqual(r.measured, want[r.row], `profile ${r.profile} does not behave as named`);
    assert.deepEqual(r.expected, want[r.row], `lab verify's printed expectation for ${r.row} disagrees with this table`);
  }
});
