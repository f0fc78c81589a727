#!/bin/bash
# Installs what qlite needs to build and test (Debian 12 packages) and builds
# the guest test kernel (cached; see tests/guest/README.md). Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# e2fsprogs: mkfs.ext2 -d makes the ext2 image of the linux-blk boot test.
# libslirp-dev: -netdev user. iproute2: the tap boot test's network namespace.
# zlib1g-dev: CRC-32 of the migration stream.
# qemu-system-x86, gnuplot-nox: the reference VMM and the chart of bench/run.py.
packages=(gcc libc6-dev binutils meson ninja-build pkg-config libglib2.0-dev python3 e2fsprogs
    libaio-dev libjson-glib-dev libslirp-dev iproute2 zlib1g-dev qemu-system-x86 gnuplot-nox)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "setup.sh: run as root to install: ${missing[*]}" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
fi

# The Linux test kernel with the built-in selftest (a few minutes the first time).
tests/guest/build-kernel.sh >/dev/null
echo "setup.sh: ready; test kernel in $(tests/guest/build-kernel.sh --path)"
