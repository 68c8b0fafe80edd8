import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { IpAddress } from '../../../../src/core/net/address.js';
import { Endpoint } from '../../../../src/core/net/endpoint.js';
import type { PortMappingProtocol } from '../../../../src/core/protocol.js';
import type { GatewayInfo } from '../../../../src/agent/port-mapping/gateway.js';
import { CHECK_MS, LEASE_S, RETRY_BASE_MS, type Grant, type Mapping } from '../../../../src/agent/port-mapping/machine.js';
import { FIRST_ANSWER_MS, PortMapper } from '../../../../src/agent/port-mapping/mapper.js';
import type { PortMapClient } from '../../../../src/agent/port-mapping/protocols.js';
import { FakeClock } from '../../fake-clock.js';

const PORT = 51820;
const gw: GatewayInfo = { gateway: IpAddress.parse('192.168.10.1'), local: IpAddress.parse('192.168.10.2'), dev: 'eth0' };

/** A router's answers, scripted per protocol: each map() takes the next one (the last repeats). */
class FakeRouter implements PortMapClient {
  maps: { lifetimeS: number; renew: boolean }[] = [];
  unmaps: Endpoint[] = [];
  /** The router's epoch: it booted at `bootedAt` on the fake clock (a reboot moves it). */
  bootedAt = 0;
  clock?: FakeClock;
  constructor(
    readonly protocol: PortMappingProtocol,
    private answers: (Partial<Grant> | string | null)[],
  ) {}
  get epochS(): number {
    return Math.floor(((this.clock?.now() ?? 0) - this.bootedAt) / 1000);
  }
  async map(_gw: GatewayInfo, internalPort: number, lifetimeS: number, renew?: Uint8Array) {
    this.maps.push({ lifetimeS, renew: renew !== undefined });
    const a = this.answers.length > 1 ? this.answers.shift()! : this.answers[0];
    if (a === null) return { ok: false as const, problem: `${this.protocol}: no answer`, answered: false };
    if (typeof a === 'string') return { ok: false as const, problem: a, answered: true };
    return { ok: true as const, grant: { protocol: this.protocol, external: Endpoint.parse('192.0.3.10:51820'), internalPort, lifetimeS: LEASE_S, epochS: this.protocol === 'upnp' ? null : this.epochS, handle: Uint8Array.of(1), ...a } };
  }
  async unmap(_gw: GatewayInfo, g: { external: Endpoint }) {
    this.unmaps.push(g.external);
  }
  async epoch() {
    return this.protocol === 'upnp' ? null : this.epochS;
  }
}

function setup(clients: PortMapClient[]) {
  const clock = new FakeClock();
  for (const c of clients) if (c instanceof FakeRouter) c.bootedAt = clock.now() - 5000_000;
  for (const c of clients) if (c instanceof FakeRouter) c.clock = clock;
  const reports: (string | null)[] = [];
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  let firstAnswers = 0;
  const mapper = new PortMapper({ clock, log, internalPort: async () => PORT, gateway: async () => gw, clients, report: (m: Mapping | null) => reports.push(m ? `${m.protocol} ${m.external}` : null), firstAnswer: () => firstAnswers++ });
  return { clock, reports, lines, mapper, firstAnswers: () => firstAnswers, warnings: () => lines.filter((l) => l.level === 40).map((l) => l.msg) };
}

test('PCP answers: mapped for 2 h, renewed at half-life with the same nonce, the router epoch checked every minute, deleted on a clean exit', async () => {
  const pcp = new FakeRouter('pcp', [{}]);
  const upnp = new FakeRouter('upnp', [{}]);
  const { clock, reports, mapper } = setup([pcp, new FakeRouter('natpmp', [null]), upnp]);
  mapper.start();
  await clock.advance(10);
  assert.deepEqual(reports, ['pcp 192.0.3.10:51820']);
  assert.equal(pcp.maps[0].lifetimeS, 7200, 'a lease of about 2 h is asked');
  assert.equal(upnp.maps.length, 0, 'the first protocol that maps wins');
  assert.equal(mapper.status().state, 'mapped');
  await clock.advance(CHECK_MS);
  assert.equal(reports.length, 1, 'an epoch that moved with our clock changes nothing');
  assert.equal(pcp.maps.length, 1);
  await clock.advance(3600_000 - CHECK_MS);
  assert.equal(pcp.maps.length, 2, 'renewed at half the granted lifetime');
  assert.equal(pcp.maps[1].renew, true, 'a renewal repeats the mapping nonce');
  await mapper.stop();
  assert.deepEqual(pcp.unmaps.map(String), ['192.0.3.10:51820']);
  assert.equal(reports.at(-1), null);
  assert.equal(clock.timers, 0, 'nothing left running');
});

test('a router that rebooted (epoch went back) is mapped again at once, and the new external port is reported', async () => {
  const pcp = new FakeRouter('pcp', [{}, { external: Endpoint.parse('192.0.3.10:40999') }]);
  const { clock, reports, mapper, warnings } = setup([pcp]);
  mapper.start();
  await clock.advance(10);
  pcp.bootedAt = clock.now() + CHECK_MS - 4000;
  await clock.advance(CHECK_MS);
  assert.deepEqual(reports, ['pcp 192.0.3.10:51820', null, 'pcp 192.0.3.10:40999'], 'withdrawn, then mapped again on another port, which works as well');
  assert.match(warnings()[0], /epoch went back from 5000 s to [0-9] s: it lost its mappings/);
  await mapper.stop();
});

test('falls back PCP -> NAT-PMP -> UPnP; no router answers: nothing reported, said once, retried with backoff', async () => {
  const pcp = new FakeRouter('pcp', [null]);
  const natpmp = new FakeRouter('natpmp', [null]);
  const upnp = new FakeRouter('upnp', [null, null, {}]);
  const { clock, reports, mapper, lines } = setup([pcp, natpmp, upnp]);
  mapper.start();
  await clock.advance(10);
  assert.deepEqual(reports, []);
  assert.equal(mapper.status().state, 'waiting');
  assert.match(mapper.status().problem ?? '', /pcp: no answer; natpmp: no answer; upnp: no answer/);
  await clock.advance(RETRY_BASE_MS);
  assert.equal(upnp.maps.length, 2, 'retried after 30 s');
  assert.equal(lines.filter((l) => /no port mapping/.test(l.msg)).length, 1, 'the same problem is logged once');
  await clock.advance(2 * RETRY_BASE_MS);
  assert.deepEqual(reports, ['upnp 192.0.3.10:51820'], 'then 60 s later, UPnP maps');
  await mapper.stop();
  assert.equal(upnp.unmaps.length, 1);
});

test('bad grants are detected, logged once, released and never reported: wrong internal port, private external address, a lease that ends too early', async () => {
  for (const [bad, why] of [
    [{ internalPort: 22 }, /internal port 22, not WireGuard's 51820/],
    [{ external: Endpoint.parse('10.0.0.7:51820') }, /not a public IPv4 address/],
    [{ lifetimeS: 30 }, /lease of 30 s, under 120 s/],
  ] as const) {
    const pcp = new FakeRouter('pcp', [bad]);
    const { clock, reports, mapper, warnings } = setup([pcp]);
    mapper.start();
    await clock.advance(10);
    await clock.advance(RETRY_BASE_MS);
    assert.deepEqual(reports, [], String(why));
    assert.equal(warnings().length, 1, 'logged once across retries');
    assert.match(warnings()[0], why);
    assert.ok(pcp.unmaps.length >= 1, 'what the router gave is released');
    await mapper.stop();
  }
});

test('a renewal that keeps failing: the mapping stays until it expires by our clock, then it is withdrawn', async () => {
  const pcp = new FakeRouter('pcp', [{ lifetimeS: 600 }, 'pcp: router refused the mapping: NO_RESOURCES (8)']);
  const { clock, reports, mapper, warnings } = setup([pcp]);
  mapper.start();
  await clock.advance(10);
  assert.deepEqual(reports, ['pcp 192.0.3.10:51820']);
  await clock.advance(300_000);
  assert.equal(reports.length, 1, 'a failed renewal keeps the lease it still has');
  await clock.advance(300_000);
  assert.deepEqual(reports, ['pcp 192.0.3.10:51820', null], 'withdrawn once the lease ran out');
  assert.ok(warnings().some((w) => /NO_RESOURCES/.test(w)));
  assert.ok(pcp.maps.length >= 3, 'renewal retried before the lease ran out');
  await mapper.stop();
});

test('a network change withdraws the mapping and maps again on the new network; a stop before the answer uses nothing', async () => {
  const pcp = new FakeRouter('pcp', [{}, { external: Endpoint.parse('192.0.3.20:51820') }]);
  const { clock, reports, mapper } = setup([pcp]);
  mapper.start();
  await clock.advance(10);
  mapper.networkChanged();
  await clock.advance(10);
  assert.deepEqual(reports, ['pcp 192.0.3.10:51820', null, 'pcp 192.0.3.20:51820']);
  assert.equal(pcp.unmaps.length, 0, 'the old router is not ours to talk to any more');
  await mapper.stop();

  const slow = new FakeRouter('pcp', [{}]);
  const s2 = setup([slow]);
  s2.mapper.start();
  await s2.mapper.stop();
  await s2.clock.advance(10);
  assert.deepEqual(s2.reports, [], 'an answer after stop is released, not reported');
  assert.equal(slow.unmaps.length, 1);
});

test('a router that answers garbage every time: nothing is used or reported, one warning across the retries', async () => {
  const pcp = new FakeRouter('pcp', ['pcp: router answered, but not usably: MAP reply carries another mapping nonce (not an answer to our request)']);
  const { clock, reports, mapper, warnings } = setup([pcp]);
  mapper.start();
  await clock.advance(10);
  await clock.advance(RETRY_BASE_MS);
  await clock.advance(2 * RETRY_BASE_MS);
  assert.equal(pcp.maps.length, 3, 'retried with backoff');
  assert.deepEqual(reports, []);
  assert.equal(mapper.status().state, 'waiting');
  assert.equal(warnings().length, 1, 'a router that speaks but says nothing usable is a warning (silence is only info), once');
  assert.match(warnings()[0], /another mapping nonce/);
  await mapper.stop();
});

test('the first answer is awaited by the hub: pending while the first round is out, and the hub hears at once when it ends, with or without a mapping', async () => {
  const granted = setup([new FakeRouter('pcp', [{}])]);
  assert.equal(granted.mapper.firstAnswerPending(), false, 'not started: nothing to wait for');
  granted.mapper.start();
  assert.equal(granted.mapper.firstAnswerPending(), true);
  await granted.clock.advance(10);
  assert.equal(granted.mapper.firstAnswerPending(), false);
  assert.deepEqual(granted.reports, ['pcp 192.0.3.10:51820']);
  assert.equal(granted.firstAnswers(), 1);

  const silent = setup([new FakeRouter('pcp', [null]), new FakeRouter('natpmp', [null]), new FakeRouter('upnp', ['no IGD answered'])]);
  silent.mapper.start();
  assert.equal(silent.mapper.firstAnswerPending(), true);
  await silent.clock.advance(10);
  assert.equal(silent.mapper.firstAnswerPending(), false, 'every protocol failed: the round is over');
  assert.deepEqual(silent.reports, [], 'no mapping to report');
  assert.equal(silent.firstAnswers(), 1, 'but the end of the round is told, so the hub stops waiting');
  silent.mapper.networkChanged();
  await silent.clock.advance(RETRY_BASE_MS * 2);
  assert.equal(silent.mapper.firstAnswerPending(), false, 'only the first round is awaited');
  assert.equal(silent.firstAnswers(), 1);

  // A router that drops the requests: its retransmissions take seconds, which nobody waits for.
  const slow = setup([]);
  const dropping: PortMapClient = {
    protocol: 'pcp',
    map: () => new Promise((r) => slow.clock.after(3750, () => r({ ok: false, problem: 'pcp: no answer', answered: false }))),
    unmap: async () => undefined,
    epoch: async () => null,
  };
  const m = new PortMapper({ clock: slow.clock, log: pino({ level: 'silent' }), internalPort: async () => PORT, gateway: async () => gw, clients: [dropping], report: () => undefined, firstAnswer: () => fired++ });
  let fired = 0;
  m.start();
  await slow.clock.advance(FIRST_ANSWER_MS - 1);
  assert.equal(m.firstAnswerPending(), true);
  await slow.clock.advance(1);
  assert.equal(m.firstAnswerPending(), false, `no answer within ${FIRST_ANSWER_MS} ms: the hub stops waiting`);
  assert.equal(fired, 1);
  await slow.clock.advance(4000);
  assert.equal(fired, 1, 'the end of the round is not told again');
  await m.stop();
});
