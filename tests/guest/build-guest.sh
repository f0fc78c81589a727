#!/bin/bash
# Builds the guest the tests boot: Debian's stock kernel (scripts/debian-kernel.sh)
# and an initramfs with busybox-static, the virtio, ext4, ACPI button and evdev
# modules, the guest agent (agent.c, static) and init. Prints the output
# directory on stdout: vmlinuz, initrd.gz, agent.
#
#   build-guest.sh           build if needed, print the directory
#   build-guest.sh --path    print the directory; exit 1 if not built yet
#
# Output: ${QLITE_CACHE:-~/.cache/qlite}/guest/<hash>/, where <hash> covers
# every input (these files, the kernel package, busybox and gcc versions).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scripts=$here/../../scripts
cache=${QLITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qlite}
die() { echo "build-guest.sh: $*" >&2; exit 1; }

mode=build
case "${1:-}" in
    "") ;;
    --path) mode=path ;;
    -h|--help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac

if [ "$mode" = path ]; then
    kdir=$("$scripts/debian-kernel.sh" --path) || exit 1
else
    kdir=$("$scripts/debian-kernel.sh")
fi
inputs=("$here/build-guest.sh" "$here/agent.c" "$here/agent.h" "$here/hostile.c" "$here/rng.c"
        "$here/init"
        "$here/udhcpc.script"
        "$scripts/initramfs.sh")
hash=$( { sha256sum "${inputs[@]}" | sed "s|$here/||; s|$scripts/||"
          basename "$kdir"; dpkg-query -W busybox-static; gcc -dumpfullversion
        } | sha256sum | cut -c1-16)
out=$cache/guest/$hash

if [ "$mode" = path ]; then
    [ -f "$out/initrd.gz" ] || die "guest not built yet (expected $out); run $0"
    echo "$out"
    exit 0
fi
[ -f "$out/initrd.gz" ] && { echo "$out"; exit 0; }

mkdir -p "$cache/guest"
work=$(mktemp -d "$cache/guest/.build-XXXXXX")
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
gcc -static -O2 -std=gnu11 -Wall -Wextra -Werror -o "$work/agent" "$here/agent.c" \
    "$here/hostile.c" "$here/rng.c" ||
    die "the guest agent does not build"
"$scripts/initramfs.sh" "$work/initrd.gz" "$kdir" "$here/init" \
    --module virtio_pci --module virtio_mmio --module virtio_blk --module virtio_net --module crc32c_generic --module ext4 \
    --module button --module evdev --module virtio_rng \
    --file "$work/agent:/agent" --file "$here/udhcpc.script:/etc/udhcpc.script"
ln -s "$kdir/vmlinuz" "$work/vmlinuz"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
echo "build-guest.sh: built $out" >&2
echo "$out"
