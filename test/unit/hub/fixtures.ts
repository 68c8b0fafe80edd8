import { IpAddress } from '../../../src/core/net/address.js';
import { Cidr, Prefixed } from '../../../src/core/net/cidr.js';
import { HostPort } from '../../../src/core/net/endpoint.js';
import { generateKeyPair } from '../../../src/core/wireguard/keys.js';
import type { HubSettings, NodeRecord } from '../../../src/hub/store/model.js';

/** Shared by the hub's unit tests: a hub like `hub init --address 10.99.0.1/24` makes, and node records built by hand. */

export function testHub(address = '10.99.0.1/24', proxiedSubnet?: string): HubSettings {
  const k = generateKeyPair();
  const a = Prefixed.parse(address);
  return {
    ...k,
    endpoints: [HostPort.parse('203.0.113.2:51820')],
    address: a,
    address6: Prefixed.parse('fd3c:1a2b:3c4d::1/64'),
    proxiedSubnet: proxiedSubnet ? Cidr.parse(proxiedSubnet) : a.subnet.next(),
    proxiedSubnet6: Cidr.parse('fd3c:1a2b:3c4d:1::/64'),
    listenPort: 51820,
    apiPort: 51821,
    clientHubKeepalive: 1,
    peerKeepalive: 25,
    agentHubKeepalive: 25,
    staleAfterSec: 120,
  };
}

/** A node at 10.99.0.<host>; its public key is derived from its name unless given. */
export function testNode(name: string, host: number, groups: string[] = ['default'], extra: Partial<NodeRecord> = {}): NodeRecord {
  return {
    name,
    kind: 'agent',
    hostNumber: host,
    address: IpAddress.parse(`10.99.0.${host}`),
    proxiedAddress: null,
    publicKey: keyOf(name),
    privateKey: '',
    tokenHash: null,
    fixedEndpoint: null,
    hubEndpoint: null,
    listenPort: 51820,
    routes: [],
    createdAt: '',
    enrolKey: null,
    enrolExpiresAt: null,
    enrolUsed: false,
    groups,
    proxied: false,
    revision: 1,
    ...extra,
  };
}

/** A well-formed WireGuard key standing for a name (tests compare keys, not cryptography). */
export function keyOf(name: string): string {
  return Buffer.from(name.padEnd(32, '.').slice(0, 32)).toString('base64');
}
