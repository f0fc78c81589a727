#!/bin/bash
# Makes a gzip'ed newc initramfs for Debian's kernel (scripts/debian-kernel.sh):
# busybox-static, the named modules with everything they depend on (so that
# `modprobe NAME` works inside), an /init, and any extra files.
#
#   initramfs.sh OUT KERNEL_DIR INIT [--module NAME]... [--file SRC:DEST]...
#
# DEST is a path inside the image; a directory SRC is copied whole. The image
# is written next to OUT and renamed into place, so OUT is always complete.
set -euo pipefail

die() { echo "initramfs.sh: $*" >&2; exit 1; }
[ $# -ge 3 ] || die "usage: initramfs.sh OUT KERNEL_DIR INIT [--module NAME]... [--file SRC:DEST]..."
out=$1 kdir=$2 init=$3
shift 3
modules=() files=()
while [ $# -gt 0 ]; do
    case "$1" in
        --module) modules+=("$2"); shift 2 ;;
        --file) files+=("$2"); shift 2 ;;
        *) die "unknown argument '$1'" ;;
    esac
done
busybox=/bin/busybox
[ -x "$busybox" ] && file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
    die "$busybox is not busybox-static (apt-get install busybox-static)"
release=$(cat "$kdir/version")
dep=$kdir/modules/modules.dep

root=$(mktemp -d "${out}.root-XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,mnt,etc} "$root/lib/modules/$release"
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$init" "$root/init"
chmod 755 "$root/init"

# Each module and, depth first, what it needs; modules.dep lists full
# dependency sets, so one level of lookup is enough.
declare -A want=()
for m in "${modules[@]}"; do
    line=$(grep -m1 -E "/${m//[-_]/[-_]}\.ko(\.[a-z]+)?:" "$dep") ||
        die "module $m is not in $dep"
    for f in ${line/:/}; do want[$f]=1; done
done
for f in "${!want[@]}"; do
    mkdir -p "$root/lib/modules/$release/$(dirname "$f")"
    cp "$kdir/modules/$f" "$root/lib/modules/$release/$f"
done
cp "$dep" "$kdir/modules/modules.alias" "$kdir/modules/modules.builtin" \
    "$root/lib/modules/$release/"

for spec in "${files[@]}"; do
    src=${spec%%:*} dest=${spec#*:}
    [ -e "$src" ] || die "no such file: $src"
    mkdir -p "$root/$(dirname "$dest")"
    cp -a "$src" "$root/$dest"
done

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
