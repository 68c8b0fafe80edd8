/**
 * `wgp2p lab vm` on this host, booting real guests: the command's exit code and output come
 * back, and each way a run ends badly (a command that hangs, Ctrl-C, SIGKILL of lab vm itself, a
 * guest that is not ready in time, KVM asked for where it does not work) ends within a bounded
 * time with a message that names the cause and the fix, and leaves no QEMU process and no run
 * directory behind. These tests start QEMU, so they run in `npm run test:kernel`, not `npm test`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
// A fixed time scale: the guest then skips timing its own process starts (about 20 s under TCG).
const ENV = { ...process.env, WGP2P_LAB_TIME_SCALE: '1', WGP2P_LOG: 'error' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Run {
  pid: number;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }>;
  stderr: () => string;
}

function labVm(args: string[]): Run {
  const t0 = performance.now();
  const c = spawn(process.execPath, [CLI, 'lab', 'vm', ...args], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Awaited<Run['done']>>((resolve) => c.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 })));
  return { pid: c.pid!, done, stderr: () => stderr };
}

/** QEMU processes started for lab vm process `pid` (their argv names its run directory). */
function qemusOf(pid: number): number[] {
  const found: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let argv: string;
    try {
      argv = readFileSync(`/proc/${d}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (argv.includes('qemu-system') && argv.includes(`wgp2p-vm-run-${pid}-`)) found.push(Number(d));
  }
  return found;
}

const runDirsOf = (pid: number) => readdirSync(tmpdir()).filter((d) => d.startsWith(`wgp2p-vm-run-${pid}-`));

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

function assertNothingLeft(pid: number): void {
  assert.deepEqual(qemusOf(pid), [], 'no QEMU process of this run is left');
  assert.deepEqual(runDirsOf(pid), [], 'no run directory (initrd, consoles) is left');
}

// Boot under TCG here takes 20-50 s, 120 s beside another guest: bounds are the boot timeout plus the run.
const BOOT_S = 300;

test("the command's exit code, stdout and stderr come back, and the output says which accelerator ran it", { timeout: (BOOT_S + 120) * 1000 }, async () => {
  const r = labVm(['--boot-timeout', String(BOOT_S), '--', 'sh', '-c', 'echo out-$((6*7)); echo to-stderr >&2; exit 7']);
  const d = await r.done;
  assert.equal(d.code, 7, d.stderr);
  assert.match(d.stdout, /^out-42$/m);
  assert.match(d.stderr, /^to-stderr$/m);
  assert.match(d.stderr, /lab vm: accel (tcg|kvm): /);
  assert.match(d.stderr, /the command exited 7 after .* guest stopped/);
  assertNothingLeft(r.pid);
});

test('a command that hangs is killed after --timeout, with the fix named, and nothing is left', { timeout: (BOOT_S + 120) * 1000 }, async () => {
  const r = labVm(['--boot-timeout', String(BOOT_S), '--timeout', '10', '--', 'sleep', '3600']);
  const d = await r.done;
  assert.notEqual(d.code, 0);
  assert.match(d.stderr, /still running inside the guest after 10 s and was killed; raise --timeout/);
  assertNothingLeft(r.pid);
});

test('Ctrl-C stops the guest at once and exits 130, leaving nothing', { timeout: (BOOT_S + 60) * 1000 }, async () => {
  const r = labVm(['--boot-timeout', String(BOOT_S), '--', 'sleep', '3600']);
  await until(() => /running: sleep 3600/.test(r.stderr()), BOOT_S * 1000, 'the guest to run the command');
  assert.equal(qemusOf(r.pid).length, 1, 'one QEMU runs the guest');
  const t0 = performance.now();
  process.kill(r.pid, 'SIGINT');
  const d = await r.done;
  assert.equal(d.code, 130, d.stderr);
  assert.ok(performance.now() - t0 < 15_000, `lab vm took ${Math.round(performance.now() - t0)} ms to stop after Ctrl-C`);
  assertNothingLeft(r.pid);
});

test('SIGKILL of lab vm takes its QEMU with it; the next run removes the run directory it left', { timeout: (2 * BOOT_S + 60) * 1000 }, async () => {
  const r = labVm(['--boot-timeout', String(BOOT_S), '--', 'sleep', '3600']);
  await until(() => /running: sleep 3600/.test(r.stderr()), BOOT_S * 1000, 'the guest to run the command');
  process.kill(r.pid, 'SIGKILL');
  await r.done;
  // pdeathsig: the kernel kills QEMU when its parent dies; nothing of ours runs to do it.
  await until(() => qemusOf(r.pid).length === 0, 5000, "QEMU to die with lab vm (setpriv --pdeathsig)");
  assert.equal(runDirsOf(r.pid).length, 1, 'a SIGKILL leaves the run directory (no handler runs)');

  // A guest that is not ready in time: bounded by --boot-timeout, and this run cleans up the one above.
  const next = labVm(['--boot-timeout', '5', '--', 'true']);
  const d = await next.done;
  assert.notEqual(d.code, 0);
  assert.match(d.stderr, /did not start the command within 5 s.*--boot-timeout/s);
  assert.ok(d.ms < 90_000, `a 5 s boot timeout took ${Math.round(d.ms)} ms in all`);
  assert.deepEqual(runDirsOf(r.pid), [], "the killed run's directory was removed by the next run");
  assertNothingLeft(next.pid);
});

test('--accel kvm where KVM does not run a guest is refused with the fix, before any boot', { timeout: 120_000 }, async (t) => {
  const r = labVm(['--accel', 'kvm', '--', 'true']);
  const d = await r.done;
  if (d.code === 0) {
    assert.match(d.stderr, /lab vm: accel kvm: /, 'where KVM works, the guest ran under it and said so');
    t.diagnostic('KVM works on this machine: the refusal is not reachable here');
    return;
  }
  assert.match(d.stderr, /KVM was asked for, but .*(--accel tcg)/);
  assert.doesNotMatch(d.stderr, /guest ready/, 'no guest was booted');
  assertNothingLeft(r.pid);
});
