#!/bin/bash
# Makes a bootable PC disk image of the test guest, as a distribution's
# installer would lay one out, for firmware boots (no -kernel):
#
#   build-disk.sh OUT GUEST_DIR 'KERNEL COMMAND LINE'
#
# OUT (raw, 37 MiB): an MBR with syslinux's boot code; partition 1 (32 MiB
# at 1 MiB, FAT16, active) holds syslinux, GUEST_DIR's vmlinuz and initrd.gz
# and a syslinux.cfg that boots them with the command line (console on
# COM1, where syslinux prints too); partition 2 (the last 4 MiB) is left
# empty for the tests' data. Built without mounting anything (mtools), so
# it works unprivileged. Needs syslinux, syslinux-common, mtools, dosfstools, fdisk.
set -euo pipefail

die() { echo "build-disk.sh: $*" >&2; exit 1; }
[ $# -eq 3 ] || die "usage: build-disk.sh OUT GUEST_DIR 'KERNEL COMMAND LINE'"
out=$1 guest=$2 append=$3
[ -f "$guest/vmlinuz" ] && [ -f "$guest/initrd.gz" ] || die "no vmlinuz and initrd.gz in $guest"
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$mbr" ] || die "$mbr missing (apt-get install syslinux-common)"

p1_start=2048           # sectors: 1 MiB
p1_sectors=65536        # 32 MiB
p2_start=$((p1_start + p1_sectors))
offset=$((p1_start * 512))

rm -f "$out"
truncate -s 37M "$out"
sfdisk --quiet --no-reread "$out" <<EOF || die "sfdisk failed"
label: dos
start=$p1_start, size=$p1_sectors, type=e, bootable
start=$p2_start, type=83
EOF
dd if="$mbr" of="$out" bs=440 count=1 conv=notrunc status=none
mkfs.fat -F 16 -n QLITEBOOT --offset "$p1_start" "$out" $((p1_sectors / 2)) >/dev/null
syslinux --offset "$offset" --install "$out"
cfg=$(mktemp)
trap 'rm -f "$cfg"' EXIT
cat >"$cfg" <<EOF
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND $append
EOF
export MTOOLS_SKIP_CHECK=1
mcopy -i "$out@@$offset" "$guest/vmlinuz" ::vmlinuz
mcopy -i "$out@@$offset" "$guest/initrd.gz" ::initrd.gz
mcopy -i "$out@@$offset" "$cfg" ::syslinux.cfg
