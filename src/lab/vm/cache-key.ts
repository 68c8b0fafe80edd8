import { createHash } from 'node:crypto';

/** Everything the guest image is built from; two builds from equal inputs are interchangeable. */
export interface ImageInputs {
  format: number;
  kernel: { package: string; version: string };
  /** Debian package name -> installed version, for the packages whose files are copied. */
  packages: Record<string, string>;
  node: { path: string; version: string };
  moduleTrees: readonly string[];
  /** The text of /init, so that a change to the guest's boot is a new image. */
  init: string;
}

/**
 * A stable key: object keys are sorted at every level, so that the order in which versions were
 * read does not make a new image.
 */
export function imageKey(inputs: ImageInputs): string {
  return createHash('sha256').update(canonical(inputs)).digest('hex').slice(0, 20);
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The directory name of an extracted kernel package: its name and version, with ":" (epochs) made safe. */
export function kernelKey(pkg: string, version: string): string {
  return `${pkg}_${version}`.replace(/[^A-Za-z0-9._+-]/g, '_');
}
