import { z } from 'zod';
import type { AccelChoice } from './accel.js';

/** What `wgp2p lab vm` takes on its command line, as commander hands it over (strings). */
export interface VmCliOptions {
  accel: string;
  memory: string;
  cpus: string;
  bootTimeout: string;
  timeout: string;
  env?: string[];
  kernelPackage: string;
  rebuild?: boolean;
  parallel?: string;
}

const int = (field: string, min: number, max: number) =>
  z.string().regex(/^\d{1,6}$/, `--${field} must be a whole number`).transform(Number).refine((n) => n >= min && n <= max, `--${field} must be from ${min} to ${max}`);

const schema = z.object({
  accel: z.enum(['auto', 'kvm', 'tcg'], { error: () => '--accel must be auto, kvm or tcg' }),
  memory: int('memory', 256, 65536),
  cpus: int('cpus', 1, 64),
  bootTimeout: int('boot-timeout', 5, 3600),
  timeout: int('timeout', 1, 86400),
  env: z.array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}=/, '--env takes NAME=VALUE (NAME: letters, digits, _)')).default([]),
  kernelPackage: z.string().regex(/^linux-image-[a-z0-9.+-]{1,100}$/, '--kernel-package must be a Debian linux-image-… package name'),
  rebuild: z.boolean().optional(),
  // Each TCG guest keeps a host core busy: more guests than cores only slows every one down.
  parallel: int('parallel', 1, 8).default(1),
});

export function parseVmOptions(raw: VmCliOptions): { accel: AccelChoice; memoryMb: number; cpus: number; bootTimeoutS: number; timeoutS: number; env: Record<string, string>; kernelPackage: string; rebuild: boolean; parallel: number } {
  const r = schema.safeParse(raw);
  if (!r.success) throw new Error(r.error.issues.map((i) => i.message).join('; '));
  const o = r.data;
  const env = Object.fromEntries(o.env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  return { accel: o.accel, memoryMb: o.memory, cpus: o.cpus, bootTimeoutS: o.bootTimeout, timeoutS: o.timeout, env, kernelPackage: o.kernelPackage, rebuild: o.rebuild === true, parallel: o.parallel };
}
