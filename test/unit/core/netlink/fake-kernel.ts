import { decodeGenl, encodeGenl, CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME, CTRL_CMD_NEWFAMILY, GENL_ID_CTRL } from '../../../../src/core/netlink/genl.js';
import { attr, decodeMessages, encodeMessage, host, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, read, type NetlinkMessage } from '../../../../src/core/netlink/message.js';
import type { NetlinkTransport, TransportEvents } from '../../../../src/core/netlink/transport.js';
import { WG_CMD_GET_DEVICE, WG_CMD_SET_DEVICE, WGALLOWEDIP_A, WGDEVICE_A, WGPEER_A } from '../../../../src/core/wireguard/netlink-codec.js';

/**
 * A kernel on the other end of a netlink socket, for unit tests: a controller that knows the
 * "wireguard" family (or not), and one WireGuard interface whose dump is split into parts of
 * `peersPerPart` peers, with the first peer's allowed IPs continued in the next part as the
 * kernel does when they do not fit.
 */
export interface FakePeer {
  key: Buffer;
  allowedIps: [number, number, number, number, number][];
  keepalive: number;
}

export class FakeKernel {
  static readonly FAMILY = 0x15;
  module = true;
  silent = false;
  ifname = 'wg0';
  peers: FakePeer[] = [];
  peersPerPart = 2;
  /** The first dump after this is set comes back flagged NLM_F_DUMP_INTR. */
  interruptNext = false;
  dumps = 0;
  /** The attribute lists of the WG_CMD_SET_DEVICE messages received. */
  sets: Buffer[] = [];

  transport = (events: TransportEvents): NetlinkTransport => ({
    send: (datagram) => {
      if (this.silent) return;
      for (const m of decodeMessages(datagram)) {
        const replies = this.answer(m);
        setImmediate(() => events.onDatagram(Buffer.concat(replies)));
      }
    },
    close: () => {},
  });

  private error(req: NetlinkMessage, errno: number): Buffer {
    const payload = Buffer.alloc(4 + 16);
    payload.writeInt32LE(-errno, 0);
    encodeMessage({ ...req, payload: Buffer.alloc(0) }).copy(payload, 4);
    return encodeMessage({ type: NLMSG_ERROR, flags: NLM_F_CAPPED, seq: req.seq, payload });
  }

  private answer(req: NetlinkMessage): Buffer[] {
    const g = decodeGenl(req.payload);
    if (req.type === GENL_ID_CTRL) {
      const name = read.string(g.attributes.find((a) => a.type === CTRL_ATTR_FAMILY_NAME)!);
      if (name !== 'wireguard' || !this.module) return [this.error(req, 2)];
      return [encodeGenl(GENL_ID_CTRL, 0, req.seq, CTRL_CMD_NEWFAMILY, 2, [attr.string(CTRL_ATTR_FAMILY_NAME, name), attr.u16(CTRL_ATTR_FAMILY_ID, FakeKernel.FAMILY)]), this.error(req, 0)];
    }
    if (req.type !== FakeKernel.FAMILY) return [this.error(req, 2)];
    const ifname = read.string(g.attributes.find((a) => a.type === WGDEVICE_A.IFNAME)!);
    if (ifname !== this.ifname) return [this.error(req, 19)];
    if (g.cmd === WG_CMD_SET_DEVICE) {
      this.sets.push(req.payload.subarray(4));
      return [this.error(req, 0)];
    }
    if (g.cmd !== WG_CMD_GET_DEVICE || (req.flags & NLM_F_DUMP) !== NLM_F_DUMP) return [this.error(req, 95)];
    this.dumps++;
    const flags = NLM_F_MULTI | (this.interruptNext ? 0x10 : 0);
    this.interruptNext = false;
    const name = attr.string(WGDEVICE_A.IFNAME, this.ifname);
    const out: Buffer[] = [];
    const peer = (p: FakePeer, ips: FakePeer['allowedIps'], full: boolean) =>
      attr.nested(0, [
        attr.raw(WGPEER_A.PUBLIC_KEY, p.key),
        ...(full ? [attr.u16(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, p.keepalive)] : []),
        attr.nested(
          WGPEER_A.ALLOWEDIPS,
          ips.map(([a, b, c, d, cidr]) => attr.nested(0, [attr.u16(WGALLOWEDIP_A.FAMILY, 2), attr.raw(WGALLOWEDIP_A.IPADDR, Buffer.from([a, b, c, d])), attr.u8(WGALLOWEDIP_A.CIDR_MASK, cidr)])),
        ),
      ]);
    // The first peer's allowed IPs "do not fit" its part: it ends the first part with one of them,
    // and the next part starts with the same peer again, carrying only its key and the rest.
    const entries: Buffer[] = [];
    const [first, ...rest] = this.peers;
    let firstPart = [name, attr.u16(WGDEVICE_A.LISTEN_PORT, 51820)];
    if (first && first.allowedIps.length > 1) {
      out.push(encodeGenl(FakeKernel.FAMILY, flags, req.seq, WG_CMD_GET_DEVICE, 1, [...firstPart, attr.nested(WGDEVICE_A.PEERS, [peer(first, first.allowedIps.slice(0, 1), true)])]));
      firstPart = [name];
      entries.push(peer(first, first.allowedIps.slice(1), false));
    } else if (first) entries.push(peer(first, first.allowedIps, true));
    for (const p of rest) entries.push(peer(p, p.allowedIps, true));
    for (let i = 0; i === 0 || i < entries.length; i += this.peersPerPart) {
      out.push(encodeGenl(FakeKernel.FAMILY, flags, req.seq, WG_CMD_GET_DEVICE, 1, [...(i === 0 ? firstPart : [name]), attr.nested(WGDEVICE_A.PEERS, entries.slice(i, i + this.peersPerPart))]));
    }
    const done = Buffer.alloc(4);
    host.putU32(done, 0, 0);
    out.push(encodeMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: req.seq, payload: done }));
    return out;
  }
}
