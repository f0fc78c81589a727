#!/bin/bash
# Runs a command where /dev/kvm works: directly on a machine that has a usable
# /dev/kvm (a VMX or SVM host), otherwise inside a throwaway nested KVM host,
# a Linux booted under QEMU TCG with an emulated AMD SVM CPU whose kvm_amd
# serves /dev/kvm. The exit status is the command's.
#
#   kvm-host.sh [options] [--] COMMAND [ARG]...
#     --nested          always use the nested host (even if /dev/kvm works here)
#     --timeout S       give the nested host S seconds in all (default: none)
#     --retry           if the nested host dies, say so and start it once more
#     --check           exit 0 if /dev/kvm works here, 1 if the nested host is needed
#
# Inside the nested host the machine's root directory is mounted read-write
# over 9p and the command runs chrooted into it, in the same working
# directory with the same environment, on a console tied to this terminal
# (so an interactive command works). TMPDIR is /dev/shm there, a tmpfs (unix
# sockets cannot be made on 9p); /tmp stays the machine's, so a checkout
# under /tmp works too. /run is a tmpfs (network namespaces). Build on the outside; inside, clocks
# disagree slightly with file times (meson: "Clock skew detected").
# Exit status 125 means the nested host itself died, or its kernel reported a
# fault (a stall, a lockup, an oops) and it was stopped: its kernel log tail
# is printed, and the command's own status is never 125 then.
#
# Environment: QLITE_HOST_MEM (default 8G), QLITE_HOST_CPUS (default: nproc),
# QLITE_CACHE (default ~/.cache/qlite). Needs qemu-system-x86, busybox-static
# and kmod (installed when missing, as root).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${QLITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qlite}
HOST_DIED=125
die() { echo "kvm-host.sh: $*" >&2; exit 1; }

nested=0 timeout=0 retry=0 check=0
while [ $# -gt 0 ]; do
    case "$1" in
        --nested) nested=1; shift ;;
        --timeout) timeout=$2; shift 2 ;;
        --retry) retry=1; shift ;;
        --check) check=1; shift ;;
        --) shift; break ;;
        -h|--help) sed -n '2,26s/^# \{0,1\}//p' "$0"; exit 0 ;;
        -*) die "unknown option '$1' (try --help)" ;;
        *) break ;;
    esac
done

# A usable /dev/kvm: the device opens and the CPU does VMX or SVM (a /dev/kvm
# of a paravirtual flavour without them runs no ordinary guest).
kvm_usable() {
    [ -c /dev/kvm ] && { : <>/dev/kvm; } 2>/dev/null && grep -qwE 'vmx|svm' /proc/cpuinfo
}
if [ $check -eq 1 ]; then
    kvm_usable
    exit
fi
[ $# -gt 0 ] || die "no command given (try --help)"
if [ $nested -eq 0 ] && kvm_usable; then
    exec "$@"
fi

ensure_packages() {
    local missing=() p
    for p in qemu-system-x86 busybox-static kmod cpio file; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages (install as root): ${missing[*]}"
    echo "kvm-host.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
}
ensure_packages
kdir=$("$here/debian-kernel.sh")

# The nested host's /init. Its kernel console is the second serial port (a
# file outside); the command gets the first, tied to our stdio.
read -r -d '' host_init <<'EOF' || true
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "qlite-host: $*" >/dev/ttyS1; }
for m in kvm-amd virtio_pci 9p 9pnet_virtio tun veth; do
    modprobe "$m" || say "modprobe $m failed"
done
ip link set lo up
run=$(sed -n 's/.*qlite_host\.run=\([^ ]*\).*/\1/p' /proc/cmdline)
r=/mnt/root
mkdir -p $r
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose hostroot $r; then
    mount -t proc proc $r/proc
    mount -t sysfs sys $r/sys
    mount -t devtmpfs dev $r/dev
    mkdir -p $r/dev/pts $r/dev/shm
    mount -t devpts devpts $r/dev/pts
    mount -t tmpfs -o mode=1777 shm $r/dev/shm
    mount -t tmpfs run $r/run
    [ -c /dev/kvm ] && say "kvm ready" || say "no /dev/kvm"
    # A heartbeat: a host whose CPUs are all stuck (in a guest, say) prints
    # nothing else, and the watcher outside stops it when this stops.
    (while :; do say alive; sleep 10; done) &
    # A subshell is no process group leader, so setsid needs no fork and the
    # status is the command's.
    (setsid -c chroot $r /bin/bash "$run/cmd.sh" </dev/ttyS0 >/dev/ttyS0 2>&1)
    rc=$?
    sync
    say "status $rc"
else
    say "cannot mount the machine's root over 9p"
fi
sync
sleep 2 # the serial port sends the last line; poweroff -f would cut it
poweroff -f
EOF

ensure_initrd() {
    local key
    key=$( { echo "$host_init"; cat "$here/initramfs.sh"; cat "$kdir/version";
             dpkg-query -W busybox-static; } | sha256sum | cut -c1-16)
    initrd=$cache/host/$key.cpio.gz
    [ -f "$initrd" ] && return 0
    mkdir -p "$cache/host"
    local init
    init=$(mktemp)
    printf '%s\n' "$host_init" >"$init"
    local mods=() m
    for m in kvm-amd virtio_pci 9p 9pnet_virtio tun veth; do mods+=(--module "$m"); done
    "$here/initramfs.sh" "$initrd" "$kdir" "$init" "${mods[@]}"
    rm -f "$init"
}
ensure_initrd

# Interactive: a terminal here and no time limit (timeout(1) runs QEMU in the
# background, where reading the terminal would stop it).
interactive=0
[ -t 0 ] && [ "$timeout" -eq 0 ] && interactive=1

# The command, with our working directory and environment, as a script the
# nested host runs from the shared root.
mkdir -p "$cache/run"
run=$(mktemp -d "$cache/run/XXXXXX")
trap 'rm -rf "$run"' EXIT
{
    echo "cd $(printf '%q' "$PWD") || exit 1"
    export -p | grep -vE '^declare -x (PWD|OLDPWD|SHLVL|_|TMPDIR)='
    echo 'export TMPDIR=/dev/shm'
    if [ $interactive -eq 1 ] && size=$(stty size 2>/dev/null); then
        echo "stty rows ${size% *} cols ${size#* } 2>/dev/null"
        printf 'exec'
        printf ' %q' "$@"
        echo
    else
        # Not a terminal here: not one for the command either (no progress
        # bars or colours in logs), and plain \n line ends.
        echo "stty -onlcr 2>/dev/null"
        printf '%q ' "$@"
        echo '</dev/null 2>&1 | cat'
        echo 'exit ${PIPESTATUS[0]}'
    fi
} >"$run/cmd.sh"

# A nested host whose kernel reports a fault (a stall, a lockup, an oops)
# runs on, but slowly or wrongly: whatever it ran from then on proves nothing.
# One whose CPUs are stuck says nothing at all, but its heartbeat stops. Its
# kernel log is watched, and at the first such sign the host is stopped (it
# is reported as dead) rather than left to fail tests until its timeout.
FAULTS='rcu: INFO: .*detected stall|soft lockup|hard LOCKUP|blocked for more than|Kernel panic|BUG: |Oops|general protection fault|stack guard page'
HEARTBEAT_LIMIT=120 # s without the heartbeat (every 10 s) before a host counts as stuck
watch_host() {
    trap - EXIT # the caller's clean-up is not ours
    local log=$1 line beats=0 n quiet=0
    while sleep 2; do
        line=$(tr -d '\r' <"$log" | grep -m1 -E "$FAULTS") || line=
        n=$(grep -c '^qlite-host: alive' "$log") || true
        if [ "$n" -gt "$beats" ]; then
            beats=$n quiet=0
        elif [ "$beats" -gt 0 ] && [ $((quiet += 2)) -ge $HEARTBEAT_LIMIT ]; then
            line="no heartbeat for $HEARTBEAT_LIMIT s: its CPUs are stuck"
        fi
        [ -n "$line" ] || continue
        echo "$line" >"$run/fault"
        sleep 5 # the rest of the report, for the log tail
        pkill -f "qlite_host\.run=$run( |\$)" || true
        return
    done
}

boot_host() {
    local log=$run/host.log
    : >"$log"
    local qemu=(qemu-system-x86_64 -accel tcg,thread=multi -cpu max
        -smp "${QLITE_HOST_CPUS:-$(nproc)}" -m "${QLITE_HOST_MEM:-8G}"
        -display none -no-reboot -nodefaults -no-user-config
        -chardev stdio,id=con,signal=off -serial chardev:con -serial "file:$log"
        -kernel "$kdir/vmlinuz" -initrd "$initrd"
        -append "console=ttyS1 panic=-1 qlite_host.run=$run"
        -virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,multidevs=remap)
    # Not interactive, QEMU reads /dev/null: a closed standard input (as CI
    # gives) would let the first file QEMU opens become its console input.
    local rc=0 input=/dev/null
    [ $interactive -eq 1 ] && input=/dev/stdin
    rm -f "$run/fault"
    watch_host "$log" &
    local watcher=$!
    if [ "$timeout" -gt 0 ]; then
        timeout -k 10 "$timeout" "${qemu[@]}" <"$input" || rc=$?
    else
        "${qemu[@]}" <"$input" || rc=$?
    fi
    kill $watcher 2>/dev/null || true
    wait $watcher 2>/dev/null || true
    local status
    status=$(sed -n 's/^qlite-host: status \([0-9]*\).*/\1/p' "$log" | tail -n1)
    if [ -s "$run/fault" ]; then
        echo "kvm-host.sh: the nested host was stopped: $(cat "$run/fault")" >&2
    elif [ -n "$status" ]; then
        return "$status"
    elif [ $rc -eq 124 ]; then
        echo "kvm-host.sh: the nested host did not finish in $timeout s" >&2
    else
        echo "kvm-host.sh: the nested host died (QEMU exit status $rc)" >&2
    fi
    echo "kvm-host.sh: last lines of its kernel log:" >&2
    tr -d '\r' <"$log" | grep -v "Unhandled WRMSR\|^qlite-host: alive" | tail -n 80 | sed 's/^/kvm-host.sh:   /' >&2
    return $HOST_DIED
}

rc=0
boot_host || rc=$?
if [ $rc -eq $HOST_DIED ] && [ $retry -eq 1 ]; then
    echo "kvm-host.sh: starting the nested host once more" >&2
    rc=0
    boot_host || rc=$?
fi
exit $rc
