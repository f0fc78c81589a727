#!/bin/bash
# Installs what qlite needs to build and test (Debian 12 packages). Idempotent.
# The test guest and the nested KVM host fetch Debian's kernel themselves
# (scripts/debian-kernel.sh, cached).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# e2fsprogs: mkfs.ext2 -d makes the ext2 image of the linux-blk boot test.
# libslirp-dev: -netdev user. iproute2: the tap boot test's network namespace.
# zlib1g-dev: CRC-32 of the migration stream. libseccomp-dev: -sandbox.
# qemu-system-x86: the reference VMM of bench/run.py and the nested KVM host.
# busybox-static, kmod, cpio, file: the initramfs of the test guest and nested host.
# gnuplot-nox: the chart of bench/run.py.
# seabios: the firmware of disk boots. syslinux, syslinux-common, mtools, dosfstools, fdisk:
# the bootable disk of the firmware boot tests (tests/guest/build-disk.sh). qemu-utils:
# qemu-img and qemu-io, which make and check the qcow2 test images.
# libvirt-daemon-system, libvirt-clients: libvirtd and virsh driving qlite (tests/qmp/probe_test.py).
packages=(gcc libc6-dev binutils meson ninja-build pkg-config libglib2.0-dev python3 e2fsprogs
    libaio-dev libjson-glib-dev libslirp-dev libseccomp-dev iproute2 zlib1g-dev qemu-system-x86 gnuplot-nox
    busybox-static kmod cpio file seabios syslinux syslinux-common mtools dosfstools fdisk qemu-utils
    libvirt-daemon-system libvirt-clients)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "setup.sh: run as root to install: ${missing[*]}" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
fi
