#!/bin/sh
# Runs QEMU 7.2 q35 where boot_test.py expects qlite, to check the guest side
# (the test guest, its agent, the harness) on another VMM and to get reference
# figures (boot time, blk-bench), where /dev/kvm works:
#   tests/boot/boot_test.py --qlite tests/boot/qemu-as-qlite.sh --tiny-dir . --case linux-blk
# -cpu host,-arch-capabilities: no IA32_ARCH_CAPABILITIES (MSR 0x10a) for the
# guest, as in bench/run.py's QEMU runs; QEMU 7.2 aborts with plain -cpu host
# on a host whose KVM refuses the value of that MSR it reported.
# -nodefaults: no default NIC (nor its iPXE option ROM) and no VGA; the cases
# add the devices they use.
# Not part of the test suite; the tiny guests need qlite's own devices.
exec qemu-system-x86_64 -M q35 -cpu host,-arch-capabilities -accel kvm \
    -nodefaults -no-user-config "$@"
