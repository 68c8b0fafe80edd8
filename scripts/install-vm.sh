#!/usr/bin/env bash
# Installs what `wgp2p lab vm` and `npm run test:kernel` need on a Debian machine (run as root):
# QEMU to boot Debian's kernel, cpio and kmod to build the guest's initramfs, and apt's download
# tools for the kernel package itself. The lab's own tools come from scripts/install.sh, which
# must have run first: the guest gets copies of this machine's binaries. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# qemu-system-x86 without recommends: no firmware blobs, GUI or ovmf are needed for -kernel boots;
# its SeaBIOS and option ROMs come from seabios/ipxe-qemu, which it depends on.
packages=(qemu-system-x86 cpio kmod zstd xz-utils dpkg apt)
# shellcheck source=lib/apt.sh
. scripts/lib/apt.sh
apt_install_missing install-vm.sh "${packages[@]}"
# The kernel package is fetched (not installed) by the image builder; it needs the package lists.
if ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
  apt-get update -qq
fi
