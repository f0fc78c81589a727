#!/bin/bash
# Boots a small VM in qlite with its console on this terminal: Debian's
# kernel, a busybox shell, a 64 MiB ext2 disk (/dev/vda) and a NIC on user
# networking that gets 10.0.2.15 by DHCP. Installs and builds what it needs
# first. On a machine with a usable /dev/kvm qlite runs directly; otherwise
# inside a nested KVM host (scripts/kvm-host.sh), which takes longer to boot.
# In the guest, `poweroff` ends the demo with status 0; Ctrl-a x quits qlite.
# Usage: scripts/demo.sh [extra qlite options]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh >&2
[ -d build ] || meson setup build >&2
ninja -C build >&2
guest=$(tests/guest/build-guest.sh)
cache=${QLITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qlite}
disk=$cache/demo-disk.img
if [ ! -f "$disk" ]; then
    files=$(mktemp -d)
    echo "Hello from the host: this file was put on the disk by scripts/demo.sh." >"$files/hello.txt"
    mkfs.ext2 -q -F -d "$files" "$disk.tmp" 64M
    rm -rf "$files"
    mv "$disk.tmp" "$disk"
fi

if scripts/kvm-host.sh --check; then
    echo "qlite demo: running directly on this machine's /dev/kvm" >&2
else
    echo "qlite demo: no usable /dev/kvm here; running inside a nested KVM host (QEMU TCG" \
         "with SVM): expect about half a minute to the prompt" >&2
fi
echo "qlite demo: in the guest, 'mount /dev/vda /mnt' shows the disk; 'poweroff' ends the" \
     "demo, Ctrl-a x quits qlite" >&2
exec scripts/kvm-host.sh -- ./build/qlite -m 256 -smp 2 -nographic \
    -kernel "$guest/vmlinuz" -initrd "$guest/initrd.gz" \
    -append "console=ttyS0 quiet ip=dhcp" \
    -drive "file=$disk,format=raw,if=virtio" -nic user "$@"
