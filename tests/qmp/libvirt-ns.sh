#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs a command beside a libvirtd of its own: run inside `unshare -m` as
# root, it mounts DIR/libvirt/{run,lib,cache,log,etc} over libvirt's system
# directories (this mount namespace only), starts virtlogd and libvirtd,
# runs the command, and stops them (also when stopped itself). Nothing of the
# machine's libvirt is touched.
#
# Usage: unshare -m libvirt-ns.sh DIR COMMAND...
set -eu
state=$1/libvirt
shift
mkdir -p "$state"/{run,lib,cache,log,etc}
cp -a /etc/libvirt/. "$state/etc/"
# The emulator runs as root, as the test does: no libvirt-qemu user needed
# on /dev/kvm or the test's files; and in this machine's /dev (a private
# one would lack /dev/kvm where the nested host has no udev).
printf 'user = "root"\ngroup = "root"\nnamespaces = []\n' >>"$state/etc/qemu.conf"
# Two of these on one machine migrate between each other: libvirt refuses a
# migration to a host with its own UUID.
printf 'host_uuid = "%s"\n' "$(cat /proc/sys/kernel/random/uuid)" >>"$state/etc/libvirtd.conf"
mount --make-rprivate /
for d in run:/run/libvirt lib:/var/lib/libvirt cache:/var/cache/libvirt log:/var/log/libvirt \
    etc:/etc/libvirt; do
    mkdir -p "${d#*:}"
    mount --bind "$state/${d%%:*}" "${d#*:}"
done
# virtlogd keeps each domain's log and serial console file (libvirt's default).
virtlogd --daemon --pid-file /run/libvirt/virtlogd.pid
libvirtd --daemon --pid-file /run/libvirt/libvirtd.pid
for _ in $(seq 100); do
    [ -S /run/libvirt/libvirt-sock ] && [ -S /run/libvirt/virtlogd-sock ] && break
    sleep 0.1
done
stop() {
    kill "$(cat /run/libvirt/libvirtd.pid)" "$(cat /run/libvirt/virtlogd.pid)" 2>/dev/null || true
}
# Stopped (SIGTERM), it stops its daemons and the command too.
trap 'kill $command 2>/dev/null; stop; exit 143' TERM
status=0
"$@" &
command=$!
wait $command || status=$?
stop
exit $status
