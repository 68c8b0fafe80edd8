import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matrixIn, matrixTopology, renderMatrix, type CellPath } from '../../../src/lab/nat-matrix.js';
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
  // No TCP fallback yet: WireGuard is UDP, so a node behind udp-blocked never reaches the hub.
  'open/udp-blocked': 'not connected',
  'firewall/udp-blocked': 'not connected',
  'cone/udp-blocked': 'not connected',
  'restricted/udp-blocked': 'not connected',
  'symmetric/udp-blocked': 'not connected',
};

test('NAT matrix: every pair of profiles gets the path Table 1 predicts, and traffic flows in every connected cell', async (t) => {
  await withLab(matrixTopology(uniqueLabName('mx')), async (lab) => {
    const cells = await matrixIn(lab);
    for (const line of renderMatrix(cells).split('\n')) t.diagnostic(line);
    assert.deepEqual(Object.keys(want).sort(), cells.map((c) => `${c.a}/${c.b}`).sort(), 'one cell per pair of profiles');
    for (const c of cells) {
      const key = `${c.a}/${c.b}`;
      assert.equal(c.path, want[key], `${key} (${c.nodes.join('-')}): ${c.reason ?? ''}`);
      if (c.path === 'relay') assert.match(c.endpoint ?? '', /^203\.0\.113\.2:\d+$/, `${key} sends to the relay on the hub`);
      if (c.path === 'direct') assert.doesNotMatch(c.endpoint ?? '', /^203\.0\.113\.2:/, `${key} does not go through the hub`);
      // One reply may be lost while a relayed pair moves into the relay's kernel path.
      if (c.path === 'direct' || c.path === 'relay') assert.ok(c.replies >= c.sent - 1, `${key}: ${c.replies}/${c.sent} pings answered`);
    }
  });
});
