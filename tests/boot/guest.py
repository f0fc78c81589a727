# SPDX-License-Identifier: GPL-2.0-or-later
"""The guest the Linux tests boot (tests/guest/README.md): Debian's stock
kernel and the test initramfs whose agent runs the checks named by
qlite_agent.* kernel parameters, prints TAP lines and reports its verdict
through isa-debug-exit (0x10 -> exit status 33, 0x11 -> 35)."""
import os
import subprocess

GUEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest")
PASS_STATUS = 33
FAIL_STATUS = 35
SKIP = 77
DEBUG_EXIT = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]


def guest_dir():
    """The built guest's directory (vmlinuz, initrd.gz), or None."""
    d = os.environ.get("QLITE_GUEST_DIR")
    if d:
        return d
    r = subprocess.run([os.path.join(GUEST_DIR, "build-guest.sh"), "--path"],
                       capture_output=True, text=True)
    return r.stdout.strip().splitlines()[-1] if r.returncode == 0 else None


def boot_args(gdir):
    return ["-kernel", os.path.join(gdir, "vmlinuz"), "-initrd", os.path.join(gdir, "initrd.gz")]


def append(*params):
    """The kernel command line: serial console, quiet (every console byte is
    an exit), then the given parameters."""
    return " ".join(["console=ttyS0", "quiet"] + [p for p in params if p])


def skip(name, why):
    """The exit status of a test that cannot run here: a skip, but a failure
    under CI=true, where a skip would hide that nothing was proven."""
    if os.environ.get("CI") == "true":
        print(f"FAIL {name}: {why} (CI=true: not skipped)")
        return 1
    print(f"SKIP {name}: {why}")
    return SKIP


def missing(name, need_guest=True):
    """None when /dev/kvm (and the guest, if needed) are there, else the exit
    status to return."""
    if not os.path.exists("/dev/kvm"):
        return skip(name, "/dev/kvm is missing (scripts/test.sh runs this in a nested KVM host)")
    if need_guest and not guest_dir():
        print(f"FAIL {name}: the guest is not built; run tests/guest/build-guest.sh")
        return 1
    return None
