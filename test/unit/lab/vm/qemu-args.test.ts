import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseVmOptions } from '../../../../src/lab/vm/options.js';
import { qemuArgs } from '../../../../src/lab/vm/qemu-args.js';

const plan = { kernel: '/c/vmlinuz', initrd: '/r/initrd.cpio', memoryMb: 3072, cpus: 2, consoleLog: '/r/console.log', stderrSocket: '/r/stderr.sock' };
const after = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

test('TCG runs single-threaded (multi-threaded TCG panicked the kernel in text patching) and the guest has no network', () => {
  const a = qemuArgs({ ...plan, accel: 'tcg' });
  assert.equal(after(a, '-accel'), 'tcg,thread=single');
  assert.equal(after(a, '-nic'), 'none');
  assert.ok(a.includes('-nodefaults') && a.includes('-no-reboot'), 'no default devices; a reboot (panic) ends QEMU');
  assert.equal(after(a, '-smp'), '2');
  assert.equal(after(a, '-m'), '3072');
  assert.equal(after(a, '-initrd'), '/r/initrd.cpio');
  assert.match(after(a, '-append'), /console=ttyS0 .*panic=-1/);
  assert.equal(after(a, '-serial'), 'file:/r/console.log');
  assert.ok(a.includes('socket,id=err,path=/r/stderr.sock'), 'stderr has its own console');
});

test('KVM runs the host CPU; extra kernel arguments are appended', () => {
  const a = qemuArgs({ ...plan, accel: 'kvm', append: ['loglevel=7'] });
  assert.deepEqual([after(a, '-accel'), after(a, '-cpu')], ['kvm', 'host']);
  assert.match(after(a, '-append'), / loglevel=7$/);
});

test('paths QEMU would split at a comma, and impossible sizes, are refused', () => {
  assert.throws(() => qemuArgs({ ...plan, accel: 'tcg', consoleLog: '/tmp/a,b/console.log' }), /console log path .* comma/);
  assert.throws(() => qemuArgs({ ...plan, accel: 'tcg', memoryMb: 100 }), /memory must be 256-65536 MiB/);
  assert.throws(() => qemuArgs({ ...plan, accel: 'tcg', cpus: 0 }), /cpus must be 1-64/);
});

test('lab vm options: numbers, accel and --env are checked and named', () => {
  const base = { accel: 'auto', memory: '3072', cpus: '2', bootTimeout: '180', timeout: '3600', kernelPackage: 'linux-image-cloud-amd64' };
  const o = parseVmOptions({ ...base, env: ['A=1', 'B=x=y'] });
  assert.deepEqual(o.env, { A: '1', B: 'x=y' });
  assert.equal(o.timeoutS, 3600);
  assert.throws(() => parseVmOptions({ ...base, accel: 'hvf' }), /--accel must be auto, kvm or tcg/);
  assert.throws(() => parseVmOptions({ ...base, timeout: '1h' }), /--timeout must be a whole number/);
  assert.throws(() => parseVmOptions({ ...base, env: ['1A=x'] }), /--env takes NAME=VALUE/);
  assert.throws(() => parseVmOptions({ ...base, kernelPackage: 'bash; rm' }), /--kernel-package/);
  assert.equal(o.parallel, 1, 'one guest unless asked');
  assert.equal(parseVmOptions({ ...base, parallel: '2' }).parallel, 2);
  assert.throws(() => parseVmOptions({ ...base, parallel: '0' }), /--parallel must be from 1 to 8/);
});
