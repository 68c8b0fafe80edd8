import assert from 'node:assert/strict';
import { test } from 'node:test';
import { imageKey, kernelKey, type ImageInputs } from '../../../../src/lab/vm/cache-key.js';
import { parentsOf } from '../../../../src/lab/vm/checkout.js';
import { cpioScript, lddPaths } from '../../../../src/lab/vm/image.js';
import { configHasWireGuard, isVersionedImage, parseMetaDepends, parseShowVersion } from '../../../../src/lab/vm/kernel.js';
import { parseModulesDep, selectModules } from '../../../../src/lab/vm/modules.js';

const inputs: ImageInputs = {
  format: 1,
  kernel: { package: 'linux-image-6.1.0-57-cloud-amd64', version: '6.1.192-3' },
  packages: { bash: '5.2.15-2+b7', 'wireguard-tools': '1.0.20210914-1+b1' },
  node: { path: '/usr/bin/node', version: 'v20.20.2' },
  moduleTrees: ['kernel/net/'],
  init: '#!/bin/bash\n',
};

test('the image key changes with every input and not with the order versions were read in', () => {
  const k = imageKey(inputs);
  assert.equal(imageKey({ ...inputs, packages: { 'wireguard-tools': '1.0.20210914-1+b1', bash: '5.2.15-2+b7' } }), k);
  assert.notEqual(imageKey({ ...inputs, kernel: { ...inputs.kernel, version: '6.1.192-4' } }), k);
  assert.notEqual(imageKey({ ...inputs, packages: { ...inputs.packages, bash: '5.2.15-2+b8' } }), k);
  assert.notEqual(imageKey({ ...inputs, node: { ...inputs.node, version: 'v20.20.3' } }), k);
  assert.notEqual(imageKey({ ...inputs, init: '#!/bin/bash\n# changed\n' }), k);
  assert.notEqual(imageKey({ ...inputs, moduleTrees: ['kernel/net/', 'kernel/lib/'] }), k);
  assert.match(k, /^[0-9a-f]{20}$/);
  assert.equal(kernelKey('linux-image-x', '1:6.1-3'), 'linux-image-x_1_6.1-3', 'an epoch colon is made safe for a directory name');
});

test('apt output: the versioned kernel of the meta-package, and its version', () => {
  assert.equal(parseMetaDepends('linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-57-cloud-amd64\n'), 'linux-image-6.1.0-57-cloud-amd64');
  assert.equal(parseMetaDepends('linux-image-cloud-amd64\n'), undefined);
  assert.equal(parseMetaDepends('linux-image-6.12-cloud-amd64\n  Depends: linux-image-6.12.117+deb12-cloud-amd64\n', 'linux-image-6.12-cloud-amd64'), 'linux-image-6.12.117+deb12-cloud-amd64');
  // A versioned package is booted as named; a meta-package is followed to the one it depends on.
  for (const p of ['linux-image-6.1.0-57-cloud-amd64', 'linux-image-6.12.117+deb12-cloud-amd64']) assert.ok(isVersionedImage(p), p);
  for (const p of ['linux-image-cloud-amd64', 'linux-image-6.12-cloud-amd64', 'linux-image-amd64']) assert.ok(!isVersionedImage(p), p);
  assert.equal(parseShowVersion('Package: linux-image-6.1.0-57-cloud-amd64\nVersion: 6.1.192-3\nArchitecture: amd64\n'), '6.1.192-3');
  assert.ok(configHasWireGuard('CONFIG_NET=y\nCONFIG_WIREGUARD=m\n'));
  assert.ok(!configHasWireGuard('# CONFIG_WIREGUARD is not set\n'), 'a kernel without WireGuard is known before it boots');
});

test('modules come with everything they depend on, and nothing outside the trees', () => {
  const deps = parseModulesDep('kernel/drivers/net/wireguard/wireguard.ko: kernel/net/ipv4/udp_tunnel.ko kernel/lib/crypto/libcurve25519.ko\nkernel/net/ipv4/udp_tunnel.ko:\nkernel/lib/crypto/libcurve25519.ko: kernel/lib/crypto/libcurve25519-generic.ko\nkernel/lib/crypto/libcurve25519-generic.ko:\nkernel/drivers/gpu/drm/drm.ko:\n');
  assert.deepEqual(selectModules(deps, ['kernel/drivers/net/wireguard/']), [
    'kernel/drivers/net/wireguard/wireguard.ko',
    'kernel/lib/crypto/libcurve25519-generic.ko',
    'kernel/lib/crypto/libcurve25519.ko',
    'kernel/net/ipv4/udp_tunnel.ko',
  ]);
  assert.deepEqual(selectModules(deps, ['kernel/net/ipv4/udp_tunnel.ko']), ['kernel/net/ipv4/udp_tunnel.ko']);
});

test('ldd output gives library paths, the loader included; the archive lists parents before a tree', () => {
  const out = '\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\tlibmissing.so => not found\n';
  assert.deepEqual(lddPaths(out), ['/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2']);
  assert.deepEqual(parentsOf('/work/wt-vm'), ['work']);
  assert.deepEqual(parentsOf('/a/b/c'), ['a', 'a/b']);
  assert.equal(cpioScript([{ path: 'work', self: true }, { path: "work/it's", prune: ['work/.git'] }], '/tmp/o.cpio'), "{ find 'work' -maxdepth 0 -print0; find 'work/it'\\''s' -path 'work/.git' -prune -o -print0; } | cpio --null -o -H newc -R 0:0 --quiet > '/tmp/o.cpio'");
});
