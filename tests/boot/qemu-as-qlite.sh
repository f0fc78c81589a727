#!/bin/sh
# Runs QEMU 7.2 q35 where boot_test.py expects qlite, to check the guest side
# (selftest, harness) and to get reference figures (boot time, blk-bench):
#   tests/boot/boot_test.py --qlite tests/boot/qemu-as-qlite.sh --tiny-dir . --case linux-blk
# -cpu host,-arch-capabilities: plain -cpu host aborts on MSR 0x10a on our PVM
# hosts. -nodefaults: no NIC (its iPXE ROM runs emulated) and no VGA.
# Not part of the test suite; the tiny guests need qlite's own devices.
exec qemu-system-x86_64 -M q35 -cpu host,-arch-capabilities -accel kvm \
    -nodefaults -no-user-config "$@"
