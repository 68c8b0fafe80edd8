import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cidr } from '../../../src/core/net/cidr.js';
import { IpAddress } from '../../../src/core/net/address.js';
import { forwardRuleset } from '../../../src/hub/forward-filter.js';
import type { NodeRecord } from '../../../src/hub/store/model.js';
import { testHub, testNode } from './fixtures.js';

const node = (name: string, address: string, groups: string[], extra: Partial<NodeRecord> = {}): NodeRecord => testNode(name, Number(address.split('.')[3]), groups, extra);

test('the hub forwards only within a group: one set per group and family, one rule each, members with every address they own', () => {
  const rules = forwardRuleset('hub', testHub(), [
    node('a', '10.99.0.2', ['default'], { routes: [Cidr.parse('192.168.50.0/24')] }),
    node('phone', '10.99.0.3', ['default', 'family'], { kind: 'client', proxiedAddress: IpAddress.parse('10.99.1.3') }),
    node('g', '10.99.0.4', ['family']),
    node('r', '10.99.0.5', ['default'], { kind: 'relay' }),
  ]);
  assert.match(rules, /set g0 \{[^}]*comment "group default"\n\s*elements = \{ 10\.99\.0\.2\/32, 192\.168\.50\.0\/24, 10\.99\.0\.3\/32, 10\.99\.1\.3\/32 \}/);
  assert.match(rules, /set g1 \{[^}]*comment "group family"\n\s*elements = \{ 10\.99\.0\.3\/32, 10\.99\.1\.3\/32, 10\.99\.0\.4\/32 \}/);
  assert.doesNotMatch(rules, /10\.99\.0\.5/, 'a relay is nobody\'s peer');
  assert.equal(rules.match(/ip saddr @g\d ip daddr @g\d accept/g)?.length, 2);
  assert.match(rules, /set h1 \{\s*type ipv6_addr;[^}]*comment "group family"\n\s*elements = \{ fd3c:1a2b:3c4d::3\/128, fd3c:1a2b:3c4d:1::3\/128, fd3c:1a2b:3c4d::4\/128 \}/, 'the IPv6 tunnel and proxied addresses, from the host numbers');
  assert.equal(rules.match(/ip6 saddr @h\d ip6 daddr @h\d accept/g)?.length, 2);
  assert.match(rules, /iifname "hub" oifname "hub" drop\n  \}\n\}\n$/, 'everything else tunnel to tunnel is dropped, last');
});
