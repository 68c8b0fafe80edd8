import { createSocket } from 'node:dgram';
import { IpAddress } from '../../core/net/address.js';

/** The local address the kernel would send from toward `to` (a connected UDP socket sends nothing). */
export function localAddressToward(to: IpAddress): Promise<IpAddress | null> {
  return new Promise((resolve) => {
    const s = createSocket(to.family === 4 ? 'udp4' : 'udp6');
    s.on('error', () => {
      s.close();
      resolve(null);
    });
    s.connect(9, to.toString(), () => {
      const a = IpAddress.tryParse(s.address().address) ?? null;
      s.close();
      resolve(a);
    });
  });
}
