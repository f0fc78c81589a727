#!/bin/bash
# Builds the qlite test kernel (Debian linux-source-6.1 + config.fragment +
# patches/ + the built-in selftest) and prints its output directory on the
# last line of stdout. Everything else goes to stderr.
#
#   build-kernel.sh          build if needed, print the directory
#   build-kernel.sh --path   print the directory; exit 1 if not built yet
#
# Output directory: ${QLITE_KERNEL_CACHE:-$HOME/.cache/qlite-kernel}/<hash>/
# holding vmlinux (ELF with the PVH note), bzImage and config. <hash> covers
# every input, so editing any of them gives a fresh build next to the old one.
# QLITE_KERNEL_JOBS sets make -j (default: CPUs + 1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tarball=/usr/src/linux-source-6.1.tar.xz
fragment=$here/config.fragment
selftest=$here/selftest/qlite_selftest.c
cache=${QLITE_KERNEL_CACHE:-$HOME/.cache/qlite-kernel}
apt_packages=(linux-source-6.1 flex bison libelf-dev bc libssl-dev xz-utils cpio
              build-essential patch)

die() { echo "build-kernel.sh: $*" >&2; exit 1; }

mode=build
case "${1:-}" in
    "") ;;
    --path) mode=path ;;
    -h|--help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac

ensure_packages() {
    local missing=() p
    for p in "${apt_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages (install as root): ${missing[*]}"
    echo "build-kernel.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${missing[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y "${missing[@]}" >&2; }
}

# The build inputs, in a fixed order; their hash names the output directory.
patches=("$here"/patches/*.patch)
[ -e "${patches[0]}" ] || die "no patches in $here/patches"
input_hash() {
    {
        sha256sum "$here/build-kernel.sh" "$fragment" "$selftest" "${patches[@]}" |
            sed "s|$here/||"
        echo "linux-source-6.1 $(dpkg-query -W -f='${Version}' linux-source-6.1)"
        gcc --version | head -n1
    } | sha256sum | cut -c1-16
}

if [ "$mode" = path ]; then
    command -v dpkg-query >/dev/null && dpkg-query -W linux-source-6.1 >/dev/null 2>&1 ||
        die "linux-source-6.1 is not installed, so the kernel is not built"
    out=$cache/$(input_hash)
    [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ] ||
        die "kernel not built yet (expected $out); run $0"
    echo "$out"
    exit 0
fi

ensure_packages
hash=$(input_hash)
out=$cache/$hash
mkdir -p "$cache"

# One build per hash at a time; a second caller waits and then reuses it.
exec 9>"$cache/$hash.lock"
flock 9
if [ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ]; then
    echo "$out"
    exit 0
fi

work=$cache/src-$hash
rm -rf "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
echo "build-kernel.sh: extracting $tarball" >&2
tar -xf "$tarball" -C "$work"
src=$work/linux-source-6.1
[ -f "$src/Makefile" ] || die "unexpected tarball layout in $tarball"
cd "$src"

for p in "${patches[@]}"; do
    echo "build-kernel.sh: applying ${p#"$here"/}" >&2
    patch -p1 --forward --batch --no-backup-if-mismatch <"$p" >&2 ||
        die "patch ${p#"$here"/} does not apply to this kernel source"
done

cp "$selftest" drivers/misc/qlite_selftest.c
echo 'obj-y += qlite_selftest.o' >>drivers/misc/Makefile

make tinyconfig >&2
scripts/kconfig/merge_config.sh -m .config "$fragment" >&2
make olddefconfig >&2

# Kconfig drops options whose dependencies are unmet without a word; refuse that.
bad=0
while IFS= read -r line; do
    if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
        grep -qxF -- "$line" .config ||
            { echo "build-kernel.sh: ${BASH_REMATCH[1]}=${BASH_REMATCH[2]} did not survive olddefconfig (now: $(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" .config || echo absent))" >&2; bad=1; }
    elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
        ! grep -q "^${BASH_REMATCH[1]}=" .config ||
            { echo "build-kernel.sh: ${BASH_REMATCH[1]} should be off but is $(grep "^${BASH_REMATCH[1]}=" .config)" >&2; bad=1; }
    fi
done <"$fragment"
[ $bad -eq 0 ] || die "config.fragment was not applied as written"

jobs=${QLITE_KERNEL_JOBS:-$(( $(nproc) + 1 ))}
echo "build-kernel.sh: make -j$jobs bzImage (a few minutes)" >&2
make -j"$jobs" bzImage >&2

readelf -n vmlinux | grep -q 'Xen' || die "vmlinux has no PVH (Xen) ELF note"

# Assemble next to the final place, then rename, so $out is always complete.
mkdir "$work/out"
cp vmlinux "$work/out/vmlinux"
cp arch/x86/boot/bzImage "$work/out/bzImage"
cp .config "$work/out/config"
rm -rf "$out"
mv "$work/out" "$out"
echo "build-kernel.sh: built $out" >&2
echo "$out"
