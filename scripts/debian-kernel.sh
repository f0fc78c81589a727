#!/bin/bash
# Fetches Debian's current stock kernel (the package linux-image-amd64 depends
# on) with `apt-get download` and unpacks it under the cache; nothing is
# installed. Prints the directory on stdout, holding:
#   vmlinuz             the bzImage
#   modules/            lib/modules/VERSION of the package, depmod'ed
#   version             the kernel release (uname -r inside)
# The directory is keyed by the package's name and version, so a new kernel
# version from Debian gives a new directory; old ones can be deleted by hand.
#
#   debian-kernel.sh           fetch if needed, print the directory
#   debian-kernel.sh --path    print the directory; exit 1 if not fetched yet
set -euo pipefail

cache=${QLITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qlite}
die() { echo "debian-kernel.sh: $*" >&2; exit 1; }

mode=fetch
case "${1:-}" in
    "") ;;
    --path) mode=path ;;
    -h|--help) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac

# The newest linux-image-X.Y.Z-N-amd64 that the meta-package points at. Without
# package lists (a fresh machine), fall back to the newest fetched directory in
# --path mode, or update them.
package() {
    local all
    all=$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p')
    echo "${all%%$'\n'*}"
}
pkg=$(package)
if [ -z "$pkg" ]; then
    if [ "$mode" = path ]; then
        newest=$(ls -d "$cache"/kernel/linux-image-*/ 2>/dev/null | sort -V | tail -n1)
        [ -n "$newest" ] && [ -f "$newest/vmlinuz" ] || die "no kernel fetched yet"
        echo "${newest%/}"
        exit 0
    fi
    [ "$(id -u)" -eq 0 ] || die "no package lists: run apt-get update as root"
    apt-get update >&2
    pkg=$(package)
    [ -n "$pkg" ] || die "apt-cache finds no linux-image-*-amd64 behind linux-image-amd64"
fi
version=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
[ -n "$version" ] && [ "$version" != "(none)" ] || die "no candidate version of $pkg"
out=$cache/kernel/$pkg-$version

if [ "$mode" = path ]; then
    [ -f "$out/vmlinuz" ] || die "$pkg $version not fetched yet (expected $out); run $0"
    echo "$out"
    exit 0
fi

mkdir -p "$cache/kernel"
exec 9>"$out.lock"
flock 9
if [ -f "$out/vmlinuz" ]; then
    echo "$out"
    exit 0
fi
command -v depmod >/dev/null || PATH=$PATH:/usr/sbin:/sbin
command -v depmod >/dev/null || die "depmod is missing (apt-get install kmod)"

work=$(mktemp -d "$cache/kernel/.fetch-XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "debian-kernel.sh: fetching $pkg $version" >&2
(cd "$work" && apt-get download "$pkg=$version" >&2 2>/dev/null) ||
    (cd "$work" && apt-get download "$pkg=$version" >&2) || die "apt-get download $pkg failed"
dpkg-deb -x "$work"/*.deb "$work/root"
release=$(ls "$work/root/lib/modules")
[ -f "$work/root/boot/vmlinuz-$release" ] || die "$pkg has no /boot/vmlinuz-$release"
depmod -b "$work/root" "$release"
mkdir "$work/out"
mv "$work/root/boot/vmlinuz-$release" "$work/out/vmlinuz"
mv "$work/root/lib/modules/$release" "$work/out/modules"
echo "$release" >"$work/out/version"
rm -rf "$out"
mv "$work/out" "$out"
echo "debian-kernel.sh: unpacked in $out" >&2
echo "$out"
