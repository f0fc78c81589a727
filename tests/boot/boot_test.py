#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Boot tests: run qlite on a guest, then check its exit status and console.

Each case boots one guest: either a tiny PVH guest built with the tests (a few
instructions, milliseconds) or the test guest (tests/guest/: Debian's kernel,
busybox and the guest agent), whose agent prints TAP lines and reports its
verdict through isa-debug-exit: 0x10 -> exit 33 (pass), 0x11 -> exit 35 (fail).
Disk cases make their images in a temporary directory first, may SIGKILL the
VMM when a console line appears, and check the images after the VMM exited.

Exit status follows meson's conventions: 0 pass, 1 fail, 77 skip.
"""
import argparse
import hashlib
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import guest
import net_setup
from guest import DEBUG_EXIT, FAIL_STATUS, PASS_STATUS
from pattern import MASK64, SECTOR, disk_pattern

LINUX_TIMEOUT = 250
TINY_TIMEOUT = 100


def case(kernel, args=(), append="", status=0, expect=(), reject=(), timeout=None,
         serial="stdio", setup=None, kill_on=None):
    """One boot. setup(tmpdir) -> Setup: images made before the boot, the qlite
    arguments and kernel parameters naming them, and a post-check run after
    the VMM exited. kill_on: a console regex; when it appears the VMM gets
    SIGKILL (expect status=KILLED then)."""
    assert kill_on is None or serial == "stdio"
    return dict(kernel=kernel, args=list(args), append=append, status=status,
                expect=list(expect), reject=list(reject), timeout=timeout, serial=serial,
                setup=setup, kill_on=kill_on)


class Setup:
    def __init__(self, args=(), append="", post=None, prefix=(), cleanup=None, watch=()):
        self.args = list(args)
        self.watch = list(watch)  # (console regex, threading.Event set when it appears)
        self.append = append
        self.post = post  # () -> list of failure messages
        self.prefix = list(prefix)  # runs the VMM: ["ip", "netns", "exec", NS]
        self.cleanup = cleanup  # () -> None, after everything


KILLED = -signal.SIGKILL  # what Popen reports for a VMM we SIGKILLed


# ---- Disk images -------------------------------------------------------------
def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return h


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_pattern(path, seed, size, offset=None):
    """Failure messages if the image at path is not exactly the pattern (or,
    given an offset, if its size bytes there are not)."""
    with open(path, "rb") as f:
        data = f.read()
    if offset is not None:
        data = data[offset:offset + size]
    if len(data) != size:
        return [f"{os.path.basename(path)}: {len(data)} bytes, expected {size}"]
    want = disk_pattern(seed, size)
    if data == want:
        return []
    bad = [s for s in range(size // SECTOR)
           if data[s * SECTOR:(s + 1) * SECTOR] != want[s * SECTOR:(s + 1) * SECTOR]]
    zero = sum(1 for s in bad if data[s * SECTOR:(s + 1) * SECTOR] == bytes(SECTOR))
    return [f"{os.path.basename(path)}: {len(bad)} of {size // SECTOR} sectors lack the "
            f"pattern of seed {seed} (first: sector {bad[0]}; {zero} of them all zero)"]


def check_unchanged(path, sha256, size=None):
    """Failure messages if the file (or its first size bytes) changed."""
    with open(path, "rb") as f:
        now = hashlib.sha256(f.read(size)).hexdigest()
    return [] if now == sha256 else [f"{os.path.basename(path)} changed (sha256 {now})"]


def make_ext2(path, files, size_kib):
    """An ext2 image of size_kib KiB holding files {name: bytes} in its root."""
    mkfs = shutil.which("mkfs.ext2") or "/usr/sbin/mkfs.ext2"
    if not os.path.exists(mkfs):
        raise RuntimeError("mkfs.ext2 is missing (apt-get install e2fsprogs)")
    root = path + ".d"
    os.mkdir(root)
    for name, data in files.items():
        write_file(os.path.join(root, name), data)
    subprocess.run([mkfs, "-q", "-F", "-b", "1024", "-d", root, path, str(size_kib)],
                   check=True, capture_output=True)


def drive(path, extra=""):
    return ["-drive", f"file={path},format=raw,if=virtio" + extra]


BLK_MIB = 2  # every sector the guest writes or compares is emulated work here
HELLO = "hello-from-qlite-host"


def setup_blk(tmp):
    """vda: empty disk, the guest benchmarks it, then writes the pattern over it;
    vdb: ext2 image with two files, mounted read-only; vdc: read-only disk with
    a known pattern that the guest must fail to change."""
    seed, ro_seed = random.randint(1, 2**32 - 1), 0x2545
    vda, vdb, vdc = (os.path.join(tmp, n + ".img") for n in ("vda", "vdb", "vdc"))
    size = BLK_MIB << 20
    write_file(vda, bytes(size))
    data = disk_pattern(7, 64 << 10) + b"tail of a partial block"
    make_ext2(vdb, {"hello.txt": HELLO.encode() + b"\n", "data.bin": data}, 1024)
    ro_size = 1 << 20
    write_file(vdc, disk_pattern(ro_seed, ro_size))
    sums = {p: file_sha256(p) for p in (vdb, vdc)}
    print(f"# blk_seed={seed}")

    def post():
        return (check_pattern(vda, seed, size) + check_unchanged(vdb, sums[vdb]) +
                check_unchanged(vdc, sums[vdc]))

    return Setup(args=drive(vda) + drive(vdb) + drive(vdc, ",readonly=on"),
                 append=(f"qlite_agent.checks=blk_bench,blk,ext2,blk_ro "
                         f"qlite_agent.blk_seed={seed} "
                         f"qlite_agent.ext2_file=/hello.txt "
                         f"qlite_agent.ext2_expect={HELLO} "
                         f"qlite_agent.ext2_hash_file=/data.bin "
                         f"qlite_agent.ext2_hash={fnv1a64(data):016x} "
                         f"qlite_agent.blk_ro_seed={ro_seed}"),
                 post=post)


DURABLE_SERIAL = "qlite-durable-1"


def setup_blk_durable(tmp):
    """One disk in the long -drive/-device form with a serial; the guest writes
    the pattern, flushes, says so and waits to be killed: the image must then
    hold every sector written before the flush."""
    seed = random.randint(1, 2**32 - 1)
    img = os.path.join(tmp, "d0.img")
    size = BLK_MIB << 20
    write_file(img, bytes(size))
    print(f"# blk_seed={seed}")
    return Setup(args=["-drive", f"file={img},format=raw,if=none,id=d0",
                       "-device", f"virtio-blk-pci,drive=d0,serial={DURABLE_SERIAL}"],
                 append=(f"qlite_agent.checks=blk_serial,blk "
                         f"qlite_agent.blk_serial={DURABLE_SERIAL} "
                         f"qlite_agent.blk_seed={seed} qlite_agent.blk_hold=300"),
                 post=lambda: check_pattern(img, seed, size))


def setup_blk_reboot(tmp):
    """The guest reboots once (PCI, MSI-X and the device go back to power-on
    state), then writes the pattern; pci=nomsi makes Linux use INTx, so the
    legacy interrupt path and the ISR are exercised too."""
    seed = random.randint(1, 2**32 - 1)
    img = os.path.join(tmp, "r0.img")
    size = BLK_MIB << 20
    write_file(img, bytes(size))
    print(f"# blk_seed={seed}")
    return Setup(args=drive(img),
                 append=(f"pci=nomsi qlite_agent.checks=blk qlite_agent.reboot=1 "
                         f"qlite_agent.blk_seed={seed}"),
                 post=lambda: check_pattern(img, seed, size))


# A bootable disk (tests/guest/build-disk.sh): the boot partition, then 4 MiB for data.
DISK_DATA_OFFSET = (2048 + 65536) * SECTOR
DISK_DATA_SIZE = 4 << 20


def build_disk(path, append):
    subprocess.run([os.path.join(guest.GUEST_DIR, "build-disk.sh"), path, guest.guest_dir(),
                    append], check=True, capture_output=True)


def setup_firmware_raw(tmp, append):
    """A raw disk with a boot loader (no -kernel): SeaBIOS boots it, syslinux
    loads the guest, whose agent reads /dev/hwrng (virtio-rng) and writes the
    pattern over partition 2, then reboots: the firmware runs again (BARs
    unassigned, its shadow copy back) and the guest does it all once more.
    The boot partition stays as it was."""
    seed = random.randint(1, 2**32 - 1)
    img = os.path.join(tmp, "boot.img")
    build_disk(img, append + f" qlite_agent.checks=cpus,rng,blk qlite_agent.blk_disk=vda2 "
                             f"qlite_agent.blk_seed={seed} qlite_agent.reboot=1")
    with open(img, "rb") as f:
        boot_sha = hashlib.sha256(f.read(DISK_DATA_OFFSET)).hexdigest()

    def post():
        return (check_pattern(img, seed, DISK_DATA_SIZE, DISK_DATA_OFFSET) +
                check_unchanged(img, boot_sha, DISK_DATA_OFFSET))

    rng = ["-object", "rng-random,id=rng0,filename=/dev/urandom", "-device",
           "virtio-rng-pci,rng=rng0"]
    return Setup(args=drive(img) + rng, post=post)


def qemu_img(*args):
    """qemu-img's exit status and output."""
    r = subprocess.run(["qemu-img"] + list(args), capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def setup_firmware_qcow2(tmp, append):
    """The same disk as a qcow2 image (qemu-img convert) under a qcow2
    overlay, given without format= (probed, as QEMU does): SeaBIOS and
    syslinux read through both layers, the guest writes partition 2 into
    the overlay. Then qemu-img check finds the overlay clean, qemu-img
    compare finds exactly what the guest wrote, and the base is unchanged.
    Two vCPUs: SeaBIOS wakes the second to count it, Linux then brings it up."""
    seed = random.randint(1, 2**32 - 1)
    raw, base, top = (os.path.join(tmp, n) for n in ("boot.img", "base.qcow2", "top.qcow2"))
    build_disk(raw, append + f" qlite_agent.checks=cpus,blk qlite_agent.cpus=2 "
                             f"qlite_agent.blk_disk=vda2 qlite_agent.blk_seed={seed}")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, base], check=True,
                   capture_output=True)
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-b", base, "-F", "qcow2", top],
                   check=True, capture_output=True)
    base_sha = file_sha256(base)

    def post():
        failures = check_unchanged(base, base_sha)
        rc, out = qemu_img("check", top)
        if rc != 0:
            failures.append(f"qemu-img check {os.path.basename(top)}: status {rc}: {out[-300:]}")
        with open(raw, "r+b") as f:  # what the disk must now read as
            f.seek(DISK_DATA_OFFSET)
            f.write(disk_pattern(seed, DISK_DATA_SIZE))
        rc, out = qemu_img("compare", "-f", "raw", "-F", "qcow2", raw, top)
        if rc != 0:
            failures.append(f"qemu-img compare with what the guest wrote: status {rc}: "
                            f"{out[-300:]}")
        return failures

    return Setup(args=["-drive", f"file={top},if=virtio"], post=post)


TAP_OK = r"ok \d+ - "

CASES = {
    # Tiny guests: the VMM's own paths, fast.
    "tiny-hello": case("tiny:hello", DEBUG_EXIT, status=PASS_STATUS,
                       expect=[r"tiny guest: hello from PVH entry"]),
    "tiny-hello-file": case("tiny:hello", DEBUG_EXIT, status=PASS_STATUS,
                            expect=[r"tiny guest: hello"], serial="file"),
    "tiny-reset": case("tiny:reset", DEBUG_EXIT, status=PASS_STATUS,
                       expect=[r"boot 1\r?\n.*boot 2"]),
    "tiny-reset-no-reboot": case("tiny:reset", DEBUG_EXIT + ["-no-reboot"], status=0,
                                 expect=[r"boot 1"], reject=[r"boot 2"]),
    "tiny-triple-fault-no-reboot": case("tiny:triple-fault", ["-no-reboot"], status=0,
                                        expect=[r"tiny guest: triple fault"]),
    "tiny-smp4": case("tiny:hello", DEBUG_EXIT + ["-smp", "4", "-m", "1G"],
                      status=PASS_STATUS, expect=[r"hello"]),
    # The test guest: Debian's kernel (bzImage), busybox and the agent.
    "linux-1cpu": case("guest", DEBUG_EXIT + ["-smp", "1"],
                       append="qlite_agent.cpus=1",
                       status=PASS_STATUS,
                       expect=[TAP_OK + r"cpus online: 1", TAP_OK + r"kvmclock",
                               TAP_OK + r"rtc", r"qlite-agent: PASS"],
                       reject=[r"not ok"]),
    "linux-2cpu": case("guest", DEBUG_EXIT + ["-smp", "2"],
                       append="qlite_agent.cpus=2",
                       status=PASS_STATUS,
                       expect=[TAP_OK + r"cpus online: 2", r"qlite-agent: PASS"],
                       reject=[r"not ok"]),
    "linux-forced-failure": case("guest", DEBUG_EXIT,
                                 append="qlite_agent.checks=cpus qlite_agent.fail=1",
                                 status=FAIL_STATUS,
                                 expect=[r"not ok \d+ - ", r"qlite-agent: FAIL"]),
    "linux-no-reboot": case("guest", DEBUG_EXIT + ["-no-reboot"],
                            append="qlite_agent.checks=cpus qlite_agent.reboot=1",
                            status=0, expect=[r"qlite-agent: rebooting"],
                            reject=[r"qlite-agent: PASS", r"qlite-agent: FAIL"]),
    # virtio-blk (PCI, MSI-X): one boot for read/write, ext2, read-only and the
    # in-guest benchmark; one for durability (SIGKILL right after the flush).
    "linux-blk": case("guest", DEBUG_EXIT,
                      setup=setup_blk, status=PASS_STATUS,
                      expect=[TAP_OK + r"blk_bench vda", TAP_OK + r"blk vda: wrote",
                              r"qlite-agent: blk flushed", TAP_OK + r"blk vda: read back",
                              TAP_OK + r"ext2 vdb: /hello\.txt holds",
                              TAP_OK + r"ext2 vdb: /data\.bin: .*fnv1a64",
                              TAP_OK + r"ext2 vdb: unmounted",
                              TAP_OK + r"blk_ro vdc: disk is marked read-only",
                              TAP_OK + r"blk_ro vdc: write refused",
                              TAP_OK + r"blk_ro vdc: first \d+ sectors unchanged",
                              TAP_OK + r"blk_ro vdc: still holds the pattern",
                              r"qlite-agent: PASS"],
                      reject=[r"not ok"], timeout=350),
    "linux-blk-durable": case("guest", DEBUG_EXIT,
                              setup=setup_blk_durable, status=KILLED,
                              kill_on=r"qlite-agent: blk flushed",
                              expect=[TAP_OK + r"blk_serial vda: '" + DURABLE_SERIAL + "'",
                                      TAP_OK + r"blk vda: wrote"],
                              reject=[r"not ok", r"hold of \d+ s over"], timeout=350),
    "linux-blk-reboot": case("guest", DEBUG_EXIT,
                             setup=setup_blk_reboot, status=PASS_STATUS,
                             expect=[r"qlite-agent: rebooting", TAP_OK + r"came back after reboot",
                                     TAP_OK + r"blk vda: read back", r"qlite-agent: PASS"],
                             reject=[r"not ok"], timeout=350),
    # Firmware boot (no -kernel): SeaBIOS, the disk's boot loader, then the guest.
    "firmware-raw": case("disk", DEBUG_EXIT, setup=setup_firmware_raw, status=PASS_STATUS,
                         expect=[r"SeaBIOS \(version", r"SYSLINUX", TAP_OK + r"cpus online: 1",
                                 TAP_OK + r"rng: the hwrng in use is virtio_rng",
                                 TAP_OK + r"rng: 65536 bytes from /dev/hwrng",
                                 TAP_OK + r"blk vda2: read back", r"qlite-agent: rebooting",
                                 r"qlite-agent: rebooting[\s\S]*SeaBIOS \(version",
                                 TAP_OK + r"came back after reboot", r"qlite-agent: PASS"],
                         reject=[r"not ok"]),
    "firmware-qcow2": case("disk", DEBUG_EXIT + ["-smp", "2"], setup=setup_firmware_qcow2,
                           status=PASS_STATUS,
                           expect=[r"SeaBIOS \(version", r"SYSLINUX", TAP_OK + r"cpus online: 2",
                                   TAP_OK + r"blk vda2: read back", r"qlite-agent: PASS"],
                           reject=[r"not ok"]),
    # virtio-net: user networking (DHCP, the host's loopback, hostfwd) and a tap.
    "linux-net-user": case("guest", DEBUG_EXIT, status=PASS_STATUS,
                           setup=lambda tmp: net_setup.setup_net_user(tmp, Setup),
                           expect=[TAP_OK + r"net_tx", TAP_OK + r"net_rx"], reject=[r"not ok"]),
    "linux-net-tap": case("guest", DEBUG_EXIT, status=PASS_STATUS,
                          setup=lambda tmp: net_setup.setup_net_tap(tmp, Setup),
                          expect=[TAP_OK + r"net_tx", TAP_OK + r"net_rx"], reject=[r"not ok"]),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qlite", required=True)
    ap.add_argument("--tiny-dir", required=True)
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--log-dir", default=".")
    a = ap.parse_args()
    c = CASES[a.case]

    if c["kernel"].startswith("tiny:"):
        status = guest.missing(a.case, need_guest=False)
        if status is not None:
            return status
        kernel = [os.path.join(a.tiny_dir, c["kernel"][5:] + ".elf")]
        append = c["append"]
        timeout = c["timeout"] or TINY_TIMEOUT
    else:
        status = guest.missing(a.case)
        if status is not None:
            return status
        # A disk's boot loader has the command line: the setup writes it there.
        kernel = None if c["kernel"] == "disk" else guest.boot_args(guest.guest_dir())[1:]
        append = guest.append(c["append"], f"qlite_agent.now={int(time.time())}")
        timeout = c["timeout"] or LINUX_TIMEOUT

    os.makedirs(a.log_dir, exist_ok=True)
    log_path = os.path.join(a.log_dir, a.case + ".console")
    with tempfile.TemporaryDirectory(prefix="qlite-" + a.case + "-") as tmp:
        setup = None
        if c["setup"]:
            try:
                setup = c["setup"](tmp, append) if kernel is None else c["setup"](tmp)
            except net_setup.SkipCase as e:
                return guest.skip(a.case, str(e))
            except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
                print(f"FAIL {a.case}: setup: {e}")
                return 1
        try:
            return boot(a, c, kernel, append, timeout, log_path, setup)
        finally:
            if setup and setup.cleanup:
                setup.cleanup()


def run_vmm(cmd, timeout, kill_on, watch=()):
    """Runs the VMM, its stdout collected (and watched for kill_on and for the
    regexes of watch, whose events are set when they appear).
    Returns (status or None on timeout, stdout, stderr, seconds until kill_on)."""
    start = time.monotonic()
    out = bytearray()
    killed = None
    pat = re.compile(kill_on.encode()) if kill_on else None
    searched = 0
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=err)
        fd = p.stdout.fileno()
        timed_out = False
        while True:
            left = start + timeout - time.monotonic()
            if left <= 0:
                timed_out = True
                p.kill()
                break
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
            for rx, event in watch:
                if not event.is_set() and re.search(rx.encode(), out):
                    event.set()
            if pat and killed is None:
                if pat.search(out, searched):
                    killed = time.monotonic() - start
                    p.send_signal(signal.SIGKILL)
                # a match may straddle two reads: search again from a line start
                searched = max(out.rfind(b"\n", 0, len(out)) + 1, 0)
        p.stdout.close()
        status = p.wait()
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return (None if timed_out else status), out.decode(errors="replace"), stderr, killed


def boot(a, c, kernel, append, timeout, log_path, setup):
    cmd = [a.qlite] + (["-kernel"] + kernel if kernel else []) + ["-m", "256", "-display", "none"]
    cmd += c["args"]
    if setup:
        cmd = setup.prefix + cmd + setup.args
        append = " ".join(p for p in [append, setup.append] if p)
    if append and kernel:
        cmd += ["-append", append]
    if c["serial"] == "file":
        cmd += ["-serial", "file:" + log_path]
    else:
        cmd += ["-serial", "stdio"]
    print("#", " ".join(cmd), flush=True)

    start = time.monotonic()
    status, stdout, stderr, killed = run_vmm(cmd, timeout, c["kill_on"], setup.watch if setup else ())
    elapsed = time.monotonic() - start
    if c["serial"] == "stdio":
        with open(log_path, "w") as f:
            f.write(stdout)
    with open(log_path, errors="replace") as f:
        console = f.read()

    print(f"# console: {log_path} ({len(console)} bytes), {elapsed:.1f} s")
    if stderr.strip():
        print("# qlite stderr:\n" + "\n".join("#   " + l for l in stderr.splitlines()))
    for line in console.splitlines():
        m = re.search(r"# (blk-bench|net_tx|net_rx)\b.*", line)
        if m:  # measurements: shown, never judged
            print("#", m.group(0)[2:].rstrip())
    failures = []
    if status is None:
        failures.append(f"timed out after {timeout} s")
    elif status != c["status"]:
        failures.append(f"exit status {status}, expected {c['status']}")
    if killed is not None:
        print(f"# killed the VMM on /{c['kill_on']}/ after {killed:.1f} s")
    if status is not None and setup and setup.post:
        failures += setup.post()
    for pat in c["expect"]:
        if not re.search(pat, console):
            failures.append(f"console lacks /{pat}/")
    for pat in c["reject"]:
        if re.search(pat, console):
            failures.append(f"console has /{pat}/")
    if failures:
        tail = "\n".join("#   " + l for l in console.splitlines()[-25:])
        print(f"# last console lines:\n{tail}")
        for f in failures:
            print(f"FAIL {a.case}: {f}")
        return 1
    print(f"PASS {a.case}: exit status {status}, {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
