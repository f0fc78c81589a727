#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Boot tests: run qlite on a guest, then check its exit status and console.

Each case boots one guest: either a tiny PVH guest built with the tests (a few
instructions, milliseconds) or the Linux test kernel with its built-in
selftest (tests/guest/), which prints TAP lines and reports its verdict
through isa-debug-exit: 0x10 -> exit 33 (pass), 0x11 -> exit 35 (fail).

Exit status follows meson's conventions: 0 pass, 1 fail, 77 skip.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_DIR = os.path.join(HERE, "..", "guest")
SKIP = 77
PASS_STATUS = 33  # selftest wrote 0x10
FAIL_STATUS = 35  # selftest wrote 0x11
DEBUG_EXIT = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
LINUX_TIMEOUT = 400
TINY_TIMEOUT = 30


def case(kernel, args=(), append="", status=0, expect=(), reject=(), timeout=None,
         serial="stdio"):
    return dict(kernel=kernel, args=list(args), append=append, status=status,
                expect=list(expect), reject=list(reject), timeout=timeout, serial=serial)


SELFTEST = "qlite_selftest.run=1"
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
    # The Linux test kernel and its selftest.
    "linux-1cpu": case("vmlinux", DEBUG_EXIT + ["-smp", "1"],
                       append=SELFTEST + " qlite_selftest.cpus=1",
                       status=PASS_STATUS,
                       expect=[r"Linux version 6\.1", r"Command line: .*qlite_selftest",
                               TAP_OK + r"cpus online: 1", TAP_OK + r"kvmclock",
                               TAP_OK + r"rtc", r"qlite-selftest: PASS"],
                       reject=[r"not ok"]),
    "linux-2cpu": case("vmlinux", DEBUG_EXIT + ["-smp", "2"],
                       append=SELFTEST + " qlite_selftest.cpus=2",
                       status=PASS_STATUS,
                       expect=[r"smpboot: Total of 2 processors activated",
                               TAP_OK + r"cpus online: 2", r"qlite-selftest: PASS"],
                       reject=[r"not ok"], timeout=800),
    "linux-forced-failure": case("vmlinux", DEBUG_EXIT,
                                 append=SELFTEST + " qlite_selftest.checks=cpus "
                                 "qlite_selftest.fail=1",
                                 status=FAIL_STATUS,
                                 expect=[r"not ok \d+ - ", r"qlite-selftest: FAIL"]),
    "linux-no-reboot": case("vmlinux", DEBUG_EXIT + ["-no-reboot"],
                            append=SELFTEST + " qlite_selftest.checks=cpus "
                            "qlite_selftest.reboot=1",
                            status=0, expect=[r"qlite-selftest: rebooting"],
                            reject=[r"qlite-selftest: PASS", r"qlite-selftest: FAIL"]),
    "linux-bzimage": case("bzImage", DEBUG_EXIT,
                          append=SELFTEST + " qlite_selftest.checks=cpus,rtc",
                          status=PASS_STATUS,
                          expect=[r"Linux version 6\.1", r"qlite-selftest: PASS"]),
}


def kernel_dir():
    d = os.environ.get("QLITE_KERNEL_DIR")
    if d:
        return d
    r = subprocess.run([os.path.join(GUEST_DIR, "build-kernel.sh"), "--path"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return r.stdout.strip().splitlines()[-1]


def host_params():
    r = subprocess.run([os.path.join(GUEST_DIR, "host-params.sh")], capture_output=True,
                       text=True, check=True)
    return r.stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qlite", required=True)
    ap.add_argument("--tiny-dir", required=True)
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--log-dir", default=".")
    a = ap.parse_args()
    c = CASES[a.case]

    if not os.path.exists("/dev/kvm"):
        print(f"SKIP {a.case}: /dev/kvm is missing")
        return SKIP
    if c["kernel"].startswith("tiny:"):
        kernel = os.path.join(a.tiny_dir, c["kernel"][5:] + ".elf")
        append = c["append"]
        timeout = c["timeout"] or TINY_TIMEOUT
    else:
        kdir = kernel_dir()
        if not kdir:
            print(f"FAIL {a.case}: the test kernel is not built; run tests/guest/build-kernel.sh")
            return 1
        kernel = os.path.join(kdir, c["kernel"])
        now = int(time.time())
        append = " ".join(p for p in ["console=ttyS0", host_params(), c["append"],
                                      f"qlite_selftest.now={now}"] if p)
        timeout = c["timeout"] or LINUX_TIMEOUT

    os.makedirs(a.log_dir, exist_ok=True)
    log_path = os.path.join(a.log_dir, a.case + ".console")
    cmd = [a.qlite, "-kernel", kernel, "-m", "256", "-display", "none"] + c["args"]
    if append:
        cmd += ["-append", append]
    if c["serial"] == "file":
        cmd += ["-serial", "file:" + log_path]
    else:
        cmd += ["-serial", "stdio"]
    print("#", " ".join(cmd), flush=True)

    start = time.monotonic()
    with tempfile.TemporaryFile() as out:
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.PIPE, timeout=timeout)
            status, stderr = p.returncode, p.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired as e:
            status, stderr = None, (e.stderr or b"").decode(errors="replace")
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    elapsed = time.monotonic() - start
    if c["serial"] == "stdio":
        with open(log_path, "w") as f:
            f.write(stdout)
    with open(log_path, errors="replace") as f:
        console = f.read()

    print(f"# console: {log_path} ({len(console)} bytes), {elapsed:.1f} s")
    if stderr.strip():
        print("# qlite stderr:\n" + "\n".join("#   " + l for l in stderr.splitlines()))
    failures = []
    if status is None:
        failures.append(f"timed out after {timeout} s")
    elif status != c["status"]:
        failures.append(f"exit status {status}, expected {c['status']}")
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
