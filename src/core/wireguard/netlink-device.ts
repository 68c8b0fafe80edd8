import { GenlClient } from '../netlink/client.js';
import { NetlinkError } from '../netlink/message.js';
import { decodeDevice, getDeviceAttributes, setDeviceBodies, WG_CMD_GET_DEVICE, WG_CMD_SET_DEVICE, WG_GENL_NAME, WG_GENL_VERSION } from './netlink-codec.js';
import type { DeviceState, DeviceUpdate } from './uapi.js';

/**
 * The kernel module's interface, read and changed over generic netlink on one long-lived socket:
 * what `wg show dump` and `wg set` do, without a process per call. The hub reads its device every
 * 20-250 ms (see hub/device-watch.ts); with wg(8) that was 4-50 processes a second.
 */

const ENOENT = 2;
const ENODEV = 19;
const EOPNOTSUPP = 95;
/** A dump the kernel flags as inconsistent (peers changed while it was read) is read again, this often at most. */
const INTERRUPTED_RETRIES = 3;

export class NetlinkDevice {
  readonly kind = 'netlink';
  private familyId: number | undefined;

  private constructor(
    readonly ifname: string,
    private readonly client: GenlClient,
  ) {}

  /**
   * Opens `ifname` if it is a kernel WireGuard interface; says why not otherwise ('no-module':
   * the kernel has no wireguard family; 'no-device': no interface by that name; 'not-wireguard').
   */
  static async open(ifname: string, client: GenlClient = new GenlClient()): Promise<NetlinkDevice | 'no-module' | 'no-device' | 'not-wireguard'> {
    const dev = new NetlinkDevice(ifname, client);
    try {
      await dev.get();
      return dev;
    } catch (err) {
      client.close();
      if (!(err instanceof NetlinkError)) throw err;
      if (err.errno === ENOENT && dev.familyId === undefined) return 'no-module';
      if (err.errno === ENODEV) return 'no-device';
      if (err.errno === EOPNOTSUPP) return 'not-wireguard';
      throw err;
    }
  }

  private async family(): Promise<number> {
    this.familyId ??= (await this.client.family(WG_GENL_NAME)).id;
    return this.familyId;
  }

  /** Runs `op`; if the family went away (the module was reloaded and got a new id), resolves it again once. */
  private async withFamily<T>(op: (id: number) => Promise<T>): Promise<T> {
    const id = await this.family();
    try {
      return await op(id);
    } catch (err) {
      if (!(err instanceof NetlinkError) || (err.errno !== ENOENT && err.errno !== EOPNOTSUPP)) throw err;
      this.familyId = undefined;
      const again = await this.family();
      if (again === id) throw err;
      return op(again);
    }
  }

  get(): Promise<DeviceState> {
    return this.withFamily(async (id) => {
      for (let attempt = 0; ; attempt++) {
        const r = await this.client.dump(id, WG_CMD_GET_DEVICE, WG_GENL_VERSION, getDeviceAttributes(this.ifname), `reading WireGuard interface ${this.ifname}`);
        // An interrupted dump may hold a peer twice or miss one; the next read is whole.
        if (!r.interrupted || attempt >= INTERRUPTED_RETRIES) return decodeDevice(r.parts);
      }
    });
  }

  async set(update: DeviceUpdate): Promise<void> {
    // Encoded before the first message goes out: a bad key in the last peer must not leave the first ones applied.
    const bodies = setDeviceBodies(this.ifname, update);
    await this.withFamily(async (id) => {
      for (const body of bodies) await this.client.ack(id, WG_CMD_SET_DEVICE, WG_GENL_VERSION, body, `changing WireGuard interface ${this.ifname}`);
    });
  }

  close(): void {
    this.client.close();
  }
}
