import assert from 'node:assert/strict';
import { test } from 'node:test';
import { judgeKvmProbe, kvmDeviceProblem } from '../../../../src/lab/vm/accel.js';
import { classify, type GuestObservation } from '../../../../src/lab/vm/failure.js';
import { commandScript, envScript, MarkerStream, shQuote, type Marker } from '../../../../src/lab/vm/guest-init.js';
import { guestEnv } from '../../../../src/lab/vm/run.js';
import { defaultDataPlane, wgQuickUserspace } from '../../../../src/lab/data-plane.js';
import { scaled } from '../../../../src/lab/time-scale.js';

function split(nonce: string, chunks: string[]): { out: string; markers: Marker[] } {
  let out = '';
  const markers: Marker[] = [];
  const s = new MarkerStream(nonce, (t) => (out += t), (m) => markers.push(m));
  chunks.forEach((c) => s.push(c));
  s.end();
  return { out, markers };
}

test("markers are taken out of the command's output, also when split across chunks; other text passes unchanged", () => {
  const n = 'abc123';
  const r = split(n, ['hello\n\x1e@@wgp2p-', 'vm abc123 ready\nout', 'put\x1e@@wgp2p-vm abc123 exit 7\n']);
  assert.equal(r.out, 'hello\noutput');
  assert.deepEqual(r.markers, [{ kind: 'ready' }, { kind: 'exit', code: 7 }]);
  const forged = split(n, ['\x1e@@wgp2p-vm 000000 exit 0\n', 'a\x1eb\n']);
  assert.deepEqual(forged.markers, [], 'a marker with another nonce is output, not a marker');
  assert.equal(forged.out, '\x1e@@wgp2p-vm 000000 exit 0\na\x1eb\n');
  assert.deepEqual(split(n, ['\x1e@@wgp2p-vm abc123 fail wireguard modprobe: FATAL: Module wireguard not found\r\n']).markers, [{ kind: 'fail', what: 'wireguard', detail: 'modprobe: FATAL: Module wireguard not found' }]);
  assert.equal(split(n, ['x\x1e@@wgp2p']).out, 'x\x1e@@wgp2p', 'a held prefix comes out when the stream ends');
});

test('the command and its environment are quoted for the shell', () => {
  assert.equal(shQuote("it's"), "'it'\\''s'");
  assert.equal(commandScript(['node', '--test', 'a b.js', '$(x)'], '/work/wt'), "cd '/work/wt' || exit 126\nexec 'node' '--test' 'a b.js' '$(x)'\n");
  assert.equal(envScript({ WGP2P_DATA_PLANE: 'kernel', X: "a'b" }), "export WGP2P_DATA_PLANE='kernel'\nexport X='a'\\''b'\n");
  assert.throws(() => envScript({ 'A-B': '1' }), /not a shell name/);
  assert.throws(() => commandScript([], '/'), /no command/);
});

test('the guest runs the kernel data plane; WGP2P_* settings go along, VM settings stay', () => {
  const env = guestEnv({ WGP2P_LOG: 'debug', WGP2P_VM_CACHE: '/x', HOME: '/root' }, { EXTRA: '1' });
  assert.deepEqual(env, { WGP2P_DATA_PLANE: 'kernel', WGP2P_LAB_TIME_SCALE: '10', WGP2P_LOG: 'debug', EXTRA: '1' }, 'no host start times: the fallback scale');
  assert.equal(defaultDataPlane({}), 'userspace');
  assert.equal(defaultDataPlane({ WGP2P_DATA_PLANE: 'kernel' }), 'kernel');
  assert.throws(() => defaultDataPlane({ WGP2P_DATA_PLANE: 'kernle' }), /WGP2P_DATA_PLANE must be userspace or kernel, not "kernle"/);
  assert.equal(wgQuickUserspace('kernel'), 'false', 'no silent fallback to wireguard-go on the kernel plane');
  assert.equal(scaled(15_000, { WGP2P_LAB_TIME_SCALE: '10' }), 150_000);
  assert.equal(scaled(15_000, { WGP2P_LAB_TIME_SCALE: 'fast' }), 15_000);
});

test('KVM: a missing device is named; a probe boot that reaches the kernel says yes, the failures seen here say no', () => {
  assert.match(kvmDeviceProblem('/nonexistent/kvm') ?? '', /\/nonexistent\/kvm is missing/);
  assert.deepEqual(judgeKvmProbe('[ 1.2] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)', '', false).works, true);
  assert.deepEqual(judgeKvmProbe('', 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\nqemu-system-x86_64: kvm.c:3183: Assertion failed.', false), { works: false, detail: 'error: failed to set MSR 0x10a to 0x69' });
  assert.deepEqual(judgeKvmProbe('', 'KVM internal error. Suberror: 1\nemulation failure', false).works, false);
  assert.deepEqual(judgeKvmProbe('', '', true), { works: false, detail: 'a probe boot made no progress in time' });
});

const obs = (o: Partial<GuestObservation>): GuestObservation => ({ phase: 'booting', ended: { by: 'exit', code: 0, signal: null }, qemuStderr: '', console: '', ...o });
const limits = { bootTimeoutS: 180, timeoutS: 600 };

test('each way a guest fails gives its cause and its fix', () => {
  const wg = classify(obs({ guestFailure: { what: 'wireguard', detail: 'modprobe: FATAL: Module wireguard not found' } }), limits);
  assert.equal(wg.kind, 'no-wireguard');
  assert.match(wg.message, /no WireGuard module .*Module wireguard not found.*CONFIG_WIREGUARD/);

  const panic = classify(obs({ console: '[ 9.1] Kernel panic - not syncing: No working init found.  Try passing init= option\n' }), limits);
  assert.equal(panic.kind, 'kernel-panic');
  assert.match(panic.message, /panicked while booting: No working init found.*--rebuild/);

  const boot = classify(obs({ ended: { by: 'timeout', afterMs: 180_000 }, console: 'SeaBIOS (version 1.16)\n' }), limits);
  assert.equal(boot.kind, 'boot-timeout');
  assert.match(boot.message, /did not start the command within 180 s .*SeaBIOS.*--boot-timeout/);

  const hang = classify(obs({ phase: 'running', ended: { by: 'timeout', afterMs: 600_000 } }), limits);
  assert.equal(hang.kind, 'hang');
  assert.match(hang.message, /still running inside the guest after 600 s and was killed; raise --timeout/);

  const kvm = classify(obs({ qemuStderr: 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n', ended: { by: 'exit', code: null, signal: 'SIGABRT' } }), limits);
  assert.equal(kvm.kind, 'qemu-error');
  assert.match(kvm.message, /QEMU stopped: .*MSR.*--accel tcg/);

  const int = classify(obs({ ended: { by: 'signal', signal: 'SIGINT' } }), limits);
  assert.deepEqual([int.kind, int.exitCode], ['interrupted', 130], 'Ctrl-C exits as an interrupted command does');
  assert.equal(classify(obs({ phase: 'running' }), limits).kind, 'guest-lost');
});
