import { z } from 'zod';

/**
 * The one rule for node names, applied by the hub when a node is added and by every device that
 * is told a name by the hub (the enrolment reply, peer infos, the agent file): a name becomes a
 * file name (NAME.conf, NAME.agent.json), a WireGuard interface (wg-quick names it after the
 * file: 15 characters at most), an argument of `ip` and a systemd unit name. Lower-case letters,
 * digits and "-" keep it inert in all of them: no "/", ".", "=", space or line break.
 */
const NODE_NAME = /^[a-z0-9][a-z0-9-]{0,14}$/;

/**
 * Names the machine already uses for its own interfaces, and the join's one-time tunnel (wgjPID,
 * agent/enrol.ts): an interface of that name would replace or be removed with one of them.
 */
const SYSTEM_INTERFACE = /^(lo|eth\d+|wlan\d+|wg\d+|wgj\d+)$/;

/** `ip link add NAME ...` and `ip link show NAME` read these words as keywords, not as a name. */
const IPROUTE2_WORDS = new Set(['dev', 'name', 'type', 'help', 'all', 'link', 'default']);

/** The relay pool calls the hub's own relay "builtin" (hub/builtin-relay.ts): a relay node may not take it. */
const RELAY_RESERVED = new Set(['builtin']);

/** Why `name` cannot be a node's name (`kind`: relays have one more reserved word), or null. */
export function nodeNameProblem(name: string, kind?: string): string | null {
  if (!NODE_NAME.test(name)) return 'use 1-15 lower-case letters, digits and "-", starting with a letter or digit';
  if (SYSTEM_INTERFACE.test(name)) return `"${name}" is a system interface name (lo, ethN, wlanN, wgN, wgjN); pick another, e.g. "${name.slice(0, 10)}-node"`;
  if (IPROUTE2_WORDS.has(name)) return `"${name}" is a keyword of ip(8) (${[...IPROUTE2_WORDS].join(', ')}); pick another, e.g. "${name}-1"`;
  if (kind === 'relay' && RELAY_RESERVED.has(name)) return `"${name}" is the name of the hub's own relay; pick another, e.g. "relay-1"`;
  return null;
}

/** The rule as a schema, for a name a device is about to make an interface and files of (a join). */
export const nodeNameSchema = z.string().superRefine((name, ctx) => {
  const problem = nodeNameProblem(name);
  if (problem) ctx.addIssue({ code: 'custom', message: `is not a node name: ${problem}` });
});

/**
 * Names that may exist already: hubs before the reserved words gave out "dev" or "default", and
 * refusing them now would stop those agents (their agent file) or every agent that sees them
 * (peer infos). The characters are what keeps a name inert in a path, a UAPI line or a unit, so
 * those are checked in full; the reserved words only matter when an interface is made.
 */
export const existingNodeNameSchema = z.string().regex(NODE_NAME, 'is not a node name: use 1-15 lower-case letters, digits and "-", starting with a letter or digit');
