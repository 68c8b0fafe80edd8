import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { decode, hubMessageSchema } from '../../../src/core/protocol.js';
import { cidrSchema } from '../../../src/core/net/schemas.js';
import { listOf, recordOf } from '../../../src/core/schema-list.js';

const K = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';

test('a list is refused at its first bad element, which the message names with how many were not checked', () => {
  const schema = z.object({ routes: listOf(cidrSchema, { max: 10_000 }) });
  const bad = ['10.0.0.0/8', '10.1.2.3/8', ...Array.from({ length: 5000 }, () => 'f.0.1/32')];
  const r = schema.safeParse({ routes: bad });
  assert.equal(r.success, false);
  assert.equal(r.error?.issues.length, 1);
  assert.deepEqual(r.error?.issues[0].path, ['routes', 1]);
  assert.match(r.error?.issues[0].message ?? '', /host bits set; the subnet is 10\.0\.0\.0\/8 \(the first bad element, 5000 more not checked\)/);
});

test('a good list parses to the values of its element schema, and its bounds hold', () => {
  const schema = listOf(cidrSchema, { min: 1, max: 2 });
  assert.deepEqual(schema.parse(['10.0.0.0/8', 'fd00::/8']).map(String), ['10.0.0.0/8', 'fd00::/8']);
  assert.equal(schema.safeParse([]).success, false);
  assert.equal(schema.safeParse(['10.0.0.0/8', '10.0.0.0/8', '10.0.0.0/8']).success, false);
  assert.equal(schema.safeParse('10.0.0.0/8').success, false);
});

test('a hub snapshot with hundreds of bad subnets is refused with one issue, not hundreds', () => {
  const settings = { peerKeepalive: 25, staleAfterSec: 120, hubPublicKey: K, hubAllowedIps: ['10.99.0.1/32', ...Array.from({ length: 900 }, () => 'f.0.1/32')], proxied: false };
  assert.throws(
    () => decode(hubMessageSchema, JSON.stringify({ type: 'snapshot', settings, peers: [] }), 'message from hub'),
    (err: Error) => err.message.split('; ').length === 1 && err.message.includes('settings.hubAllowedIps.1:') && err.message.includes('899 more not checked'),
  );
});

test('a record is refused at its first bad value and past its entry limit', () => {
  const schema = recordOf(z.number().nonnegative(), 3);
  assert.deepEqual(schema.parse({ a: 1, b: 2 }), { a: 1, b: 2 });
  const r = schema.safeParse({ a: 1, b: -1, c: -2 });
  assert.deepEqual(r.error?.issues.map((i) => i.path), [['b']]);
  assert.equal(schema.safeParse({ a: 1, b: 2, c: 3, d: 4 }).success, false);
});
