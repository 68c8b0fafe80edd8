#!/usr/bin/env bash
# Installs what wgp2p and its lab need on a fresh Debian machine (run as root), then builds it
# and puts `wgp2p` on the PATH. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(wireguard-tools wireguard-go iproute2 nftables iptables conntrack iperf3 procps iputils-ping
          miniupnpd-nftables miniupnpc natpmpc util-linux netsniff-ng
          tinyproxy  # the lab's http-proxy network (src/lab/http-proxy.ts)
          systemd)  # systemd-analyze: the unit tests verify the units wgp2p writes (no running systemd needed)
# shellcheck source=lib/apt.sh
. scripts/lib/apt.sh
apt_install_missing install.sh "${packages[@]}"
# The Debian package may have started a system-wide miniupnpd; the lab runs its own per router.
pkill -x miniupnpd 2>/dev/null || true
# Likewise tinyproxy: the lab runs one in each http-proxy router's namespace; a system-wide one is not needed.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl disable --now tinyproxy.service >/dev/null 2>&1 || true; fi

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "install.sh: Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
chmod +x dist/src/cli/main.js
npm link --no-audit --no-fund --loglevel=error >/dev/null
