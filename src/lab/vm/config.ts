import { join } from 'node:path';

/**
 * What the guest is made of. Everything here goes into the image's cache key, so a change to a
 * list rebuilds the image instead of booting a stale one.
 */

/** Debian's meta-package; it depends on the current `linux-image-VERSION-cloud-amd64`. */
export const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';

/** Bumped when the builder changes in a way the lists below do not show. */
export const IMAGE_FORMAT = 2;

/**
 * Debian packages whose files the guest gets (copied from this machine, with every library their
 * executables link to): a shell and coreutils for wg-quick and /init, and the lab's tools.
 */
export const GUEST_PACKAGES = [
  'bash', 'dash', 'coreutils', 'hostname', 'mawk', 'util-linux', 'mount', 'procps', 'grep', 'sed', 'findutils', 'kmod', 'netbase',
  'iproute2', 'iputils-ping', 'wireguard-tools', 'nftables', 'iptables', 'conntrack', 'iperf3', 'miniupnpd-nftables',
  'miniupnpc', 'natpmpc', 'netsniff-ng',
  // `hub init` makes the stream API's TLS certificate with openssl(1) (core/stream/tls-identity.ts).
  'openssl',
  // The userspace plane too, so a bench can compare both planes under the same emulation (2.5 MB).
  'wireguard-go',
] as const;

/** Links of the alternatives system the guest needs (each resolves through /etc/alternatives to a copied file). */
export const ALTERNATIVES = ['/usr/bin/awk', '/usr/sbin/iptables', '/usr/sbin/ip6tables', '/usr/sbin/iptables-restore', '/usr/sbin/ip6tables-restore', '/usr/sbin/iptables-save', '/usr/sbin/ip6tables-save'] as const;

/** Paths of those packages that a guest never reads: left out to keep the image small. */
export const SKIPPED_PATHS = [/^\/usr\/share\/(doc|man|info|locale|lintian|bash-completion|zsh)\//, /^\/usr\/lib\/systemd\//, /^\/lib\/systemd\//, /^\/etc\/(init\.d|logrotate\.d|cron\.[a-z]+)\//];

/**
 * Module trees of the kernel package the guest gets (with whatever they depend on): networking
 * (WireGuard, veth, bridges, nftables, conntrack, NAT), virtio for the output console and entropy.
 */
export const MODULE_TREES = ['kernel/net/', 'kernel/drivers/net/wireguard/', 'kernel/drivers/net/veth.ko', 'kernel/drivers/net/dummy.ko', 'kernel/drivers/net/tun.ko', 'kernel/drivers/virtio/', 'kernel/drivers/char/virtio_console.ko', 'kernel/drivers/char/hw_random/', 'kernel/lib/', 'kernel/crypto/', 'kernel/arch/x86/crypto/'] as const;

/**
 * Loaded by /init before anything runs (the rest load on demand, as on any Debian machine). tun
 * too: opening /dev/net/tun loads nothing when the node is not there yet, and devtmpfs makes the
 * node only once the module is in.
 */
export const BOOT_MODULES = ['virtio_pci', 'virtio_console', 'virtio_rng', 'wireguard', 'veth', 'bridge', 'nf_tables', 'tun'] as const;

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.WGP2P_VM_CACHE ?? '/var/cache/wgp2p/vm';
}

export const kernelDir = (cache: string) => join(cache, 'kernel');
export const imageDir = (cache: string) => join(cache, 'image');
