#!/usr/bin/env bash
# The lab demo: builds the seed-000 topology, shows it, proves the NATs behave, tears it down.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'wgp2p lab down seed000 >/dev/null 2>&1 || true' EXIT
wgp2p lab up topologies/seed000.yaml
echo
echo "client (behind the cafe NAT) pings the hub on the internet:"
wgp2p lab exec client -- ping -c 2 -W 2 203.0.113.2 | tail -2
echo
echo "the hub cannot reach the device behind its home NAT unsolicited:"
wgp2p lab exec hub -- ping -c 1 -W 1 192.168.10.2 | tail -2 || true
echo
wgp2p lab down seed000
