import { attr, decodeAttributes, encodeMessage, NetlinkError, NLM_F_ACK, NLM_F_REQUEST, read, type Attribute } from './message.js';

/**
 * Generic netlink (linux/genetlink.h): a 4-byte header (command, version, reserved) after the
 * netlink header. A family's message type is a number the kernel assigns when the module loads,
 * so it is asked for by name from the controller (GENL_ID_CTRL, CTRL_CMD_GETFAMILY).
 */

export const GENL_HDRLEN = 4;
export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_NEWFAMILY = 1;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_ATTR_VERSION = 3;
const CTRL_VERSION = 2;

export interface GenlMessage {
  cmd: number;
  version: number;
  attributes: Attribute[];
}

export function encodeGenl(familyId: number, flags: number, seq: number, cmd: number, version: number, attributes: Buffer[]): Buffer {
  const head = Buffer.from([cmd, version, 0, 0]);
  return encodeMessage({ type: familyId, flags, seq, payload: Buffer.concat([head, ...attributes]) });
}

export function decodeGenl(payload: Buffer): GenlMessage {
  if (payload.length < GENL_HDRLEN) throw new NetlinkError(`generic netlink payload is ${payload.length} bytes, shorter than its ${GENL_HDRLEN}-byte header`);
  return { cmd: payload[0], version: payload[1], attributes: decodeAttributes(payload.subarray(GENL_HDRLEN)) };
}

/** Asks the controller for one family by name (answered by one CTRL_CMD_NEWFAMILY, or ENOENT). */
export function familyRequest(name: string, seq: number): Buffer {
  return encodeGenl(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, seq, CTRL_CMD_GETFAMILY, CTRL_VERSION, [attr.string(CTRL_ATTR_FAMILY_NAME, name)]);
}

export interface Family {
  id: number;
  name: string;
  version: number;
}

export function decodeFamily(payload: Buffer): Family {
  const g = decodeGenl(payload);
  if (g.cmd !== CTRL_CMD_NEWFAMILY) throw new NetlinkError(`controller answered with command ${g.cmd}, expected CTRL_CMD_NEWFAMILY (${CTRL_CMD_NEWFAMILY})`);
  let id: number | undefined;
  let name = '';
  let version = 0;
  for (const a of g.attributes) {
    if (a.type === CTRL_ATTR_FAMILY_ID) id = read.u16(a, 'CTRL_ATTR_FAMILY_ID');
    else if (a.type === CTRL_ATTR_FAMILY_NAME) name = read.string(a);
    else if (a.type === CTRL_ATTR_VERSION) version = read.u32(a, 'CTRL_ATTR_VERSION');
  }
  if (id === undefined) throw new NetlinkError(`controller's answer for family "${name}" has no CTRL_ATTR_FAMILY_ID`);
  return { id, name, version };
}
