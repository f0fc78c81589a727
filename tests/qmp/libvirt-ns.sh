#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs a command beside a libvirtd of its own: run inside `unshare -m` as
# root, it mounts DIR/libvirt/{run,lib,cache,log,etc} over libvirt's system
# directories (this mount namespace only), starts libvirtd, runs the
# command, and stops libvirtd. Nothing of the machine's libvirt is touched.
#
# Usage: unshare -m libvirt-ns.sh DIR COMMAND...
set -eu
state=$1/libvirt
shift
mkdir -p "$state"/{run,lib,cache,log,etc}
cp -a /etc/libvirt/. "$state/etc/"
# The emulator runs as root, as the test does: no libvirt-qemu user needed
# on /dev/kvm or the test's files.
printf 'user = "root"\ngroup = "root"\n' >>"$state/etc/qemu.conf"
mount --make-rprivate /
for d in run:/run/libvirt lib:/var/lib/libvirt cache:/var/cache/libvirt log:/var/log/libvirt \
    etc:/etc/libvirt; do
    mkdir -p "${d#*:}"
    mount --bind "$state/${d%%:*}" "${d#*:}"
done
libvirtd --daemon --pid-file /run/libvirt/libvirtd.pid
for _ in $(seq 100); do
    [ -S /run/libvirt/libvirt-sock ] && break
    sleep 0.1
done
status=0
"$@" || status=$?
kill "$(cat /run/libvirt/libvirtd.pid)" 2>/dev/null || true
exit $status
