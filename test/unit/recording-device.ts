import type { WireGuardDevice } from '../../src/core/wireguard/device.js';
import type { DeviceState, DeviceUpdate } from '../../src/core/wireguard/uapi.js';

/** A device with no peers that records every update it is given, for tests of what an agent sets. */
export class RecordingDevice implements WireGuardDevice {
  readonly ifname = 'fake0';
  readonly kind = 'uapi';
  sets: DeviceUpdate[] = [];
  async get(): Promise<DeviceState> {
    return { listenPort: 51820, fwmark: 0, peers: [] };
  }
  async set(update: DeviceUpdate): Promise<void> {
    this.sets.push(update);
  }
}
