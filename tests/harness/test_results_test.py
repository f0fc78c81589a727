#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""scripts/test-results.py: which tests a dead nested host makes run again,
and the closing count over the runs (each test of a run once, with its last
result; a run named by its logs' file names)."""
import json
import os
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                      "test-results.py")
failures = 0
number = 0


def check(name, got, want):
    global failures, number
    number += 1
    if got == want:
        print(f"ok {number} - {name}")
    else:
        failures += 1
        print(f"not ok {number} - {name}\n#   expected: {want!r}\n#   got:      {got!r}")


def run(*args):
    p = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)
    return p.returncode, p.stdout.strip()


with tempfile.TemporaryDirectory() as d:
    def write(name, text):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # A host that passed one test, failed two while sick, and died during the fourth.
    dead = write("console-kvm-1.txt",
                 " 1/4 qlite:kvm+boot+boot-tiny / tiny-hello        OK      9.79s\r\n"
                 "15/4 qlite:kvm+boot+boot-linux / linux-blk-reboot TIMEOUT 400.23s   killed\n"
                 "18/4 qlite:kvm+qmp / qmp                          FAIL    89.05s   exit status 1\n"
                 "kvm-host.sh:   [  684.437483]  kvm_vcpu_ioctl+0x25e/0x720 [kvm]\n")
    names = ["tiny-hello", "linux-blk-reboot", "qmp", "lifecycle"]
    print("1..6")
    check("rerun: all but the passed", run("rerun", dead, *names),
          (0, "linux-blk-reboot\nqmp\nlifecycle"))

    def log(name, entries):
        return write(name, "".join(json.dumps({"name": n, "result": r}) + "\n" for n, r in entries))

    host = log("testlog-host.json", [("qlite:unit / qmp", "OK"), ("qlite:unit / rtc", "OK")])
    healthy = log("testlog-kvm-2.json", [("qlite:kvm+boot+boot-linux / linux-blk-reboot", "OK"),
                               ("qlite:kvm+qmp / qmp", "OK"), ("qlite:kvm+qmp / lifecycle", "OK")])
    check("count: rerun results replace the dead host's",
          run("count", "--json", host, "--console", dead, "--json", healthy),
          (0, "6 passed, 0 failed, 0 skipped"))
    failed = log("testlog-kvm-3.json", [("qlite:kvm+boot+boot-linux / linux-blk-reboot", "OK"),
                                   ("qlite:kvm+qmp / qmp", "FAIL"),
                                   ("qlite:kvm+qmp / lifecycle", "SKIP")])
    check("count: a failure on a healthy host counts",
          run("count", "--json", host, "--console", dead, "--json", failed),
          (1, "4 passed, 1 failed, 1 skipped"))
    check("count: a dead host's failures count when nothing ran after it",
          run("count", "--json", host, "--console", dead), (1, "3 passed, 2 failed, 0 skipped"))
    san = log("testlog-san-kvm-1.json", [("qlite:kvm+qmp / qmp", "FAIL")])
    check("count: another run's result of the same test counts on its own",
          run("count", "--json", host, "--console", dead, "--json", healthy, "--json", san),
          (1, "6 passed, 1 failed, 0 skipped"))
    check("count: a missing log counts nothing",
          run("count", "--json", os.path.join(d, "none.json")), (0, "0 passed, 0 failed, 0 skipped"))
sys.exit(1 if failures else 0)
