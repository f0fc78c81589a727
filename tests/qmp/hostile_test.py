#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The guest attacks a device from inside; qlite survives and the VM still saves.

The Linux test guest boots with two disks. Its agent (tests/guest/hostile.c)
takes vdb from its driver and attacks the device: looping and out-of-table
chains, indirect tables out of RAM, looping or of odd length, buffers out
of RAM or of 4 GiB, a head beyond the ring, queue settings changed while
live, status bits out of order, MSI-X vectors out of range, every config
space offset at every width, BARs over each other and over RAM, MMIO and
port storms; each a TAP line (NEEDS_RESET where the spec asks, a reset
brings the device back). It leaves vdb broken with a chain in flight, runs
a short memory workload, and is saved there with `migrate` to a file; a new
qlite restores it, where the agent finds vdb still NEEDS_RESET, resets it,
gives it back to the kernel's driver and reads it, and checks vda, the
disk nobody attacked. Pass: exit status 33 and every line ok.

Usage: hostile_test.py --vmm QLITE [--log-dir DIR]   (exit 0, 1, 77 skip)
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "boot"))
sys.path.insert(0, HERE)
import boot_test  # noqa: E402
import guest  # noqa: E402
import linux_lifecycle_test as lc  # noqa: E402  Console, Monitor, check

ATTACKS = 15  # TAP lines the hostile check prints
SAVE_AT = 3
PASS_STATUS = 33


def vmm_args(a, tmp, name, extra):
    console = os.path.join(tmp, name + ".console")
    append = guest.append("qlite_agent.checks=hostile,mig_workload,hostile_recover,blk",
                          "qlite_agent.mig_rounds=40", "qlite_agent.blk_disk=vda",
                          "qlite_agent.hostile_disk=vdb")
    return [a.vmm] + guest.boot_args(a.gdir) + [
        "-m", "256", "-nodefaults", "-display", "none", "-serial", f"file:{console}",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-drive", f"file={os.path.join(tmp, 'vda.img')},format=raw,if=virtio",
        "-drive", f"file={os.path.join(tmp, 'vdb.img')},format=raw,if=virtio",
        "-append", append] + extra, console


def attack_and_save(a, tmp, state):
    """The attacks, then a save to state; True when the source saved and quit."""
    sock = os.path.join(tmp, "src.sock")
    args, console = vmm_args(a, tmp, "source", ["-qmp", f"unix:{sock},server=on,wait=off"])
    errlog = os.path.join(tmp, "source.stderr")
    with open(errlog, "wb") as err:
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stderr=err)
    con = lc.Console(console)
    saved = False
    try:
        mon = lc.Monitor(sock)
        mon.cmd("migrate-set-capabilities",
                {"capabilities": [{"capability": "events", "state": True}]})
        # Thousands of MMIO and port exits: minutes under the sanitizers in a nested host.
        done = con.wait(r"qlite-agent: hostile done", proc=p, timeout=800)
        if not lc.check(done is not None, "the agent attacked vdb and qlite is still running"):
            print("# console tail:\n" + "\n".join("#   " + l for l in
                                                  con.text().splitlines()[-15:]))
            return False
        text = con.text()
        # A guest may reset itself (in a nested host the emulated SVM now and then
        # gives it a triple fault): the agent then starts over, and its last run counts.
        boots = text.count("TAP version 13")
        if boots > 1:
            print(f"# the guest booted {boots} times before the attacks were done; "
                  "the last run's lines count")
            text = text[text.rindex("TAP version 13"):]
        lines = [l.strip() for l in re.findall(r"^(?:not )?ok \d+ - hostile .*$", text, re.M)]
        for line in lines:
            lc.check(line.startswith("ok"), "guest: " + line.split(" - ", 1)[1])
        lc.check(len(lines) == ATTACKS, f"every attack reported ({len(lines)} of {ATTACKS})")
        lc.check(con.wait(rf"mig round {SAVE_AT} ", proc=p) is not None,
                 "the guest runs on after the attacks")
        lc.check(mon.cmd("query-status")["return"]["status"] == "running",
                 "query-status: running")
        r, _ = lc.migrate_until_done(mon, f"file:{state}")
        st = mon.cmd("query-migrate")["return"].get("status")
        saved = lc.check(st == "completed", f"the attacked VM saves ({r}, {st})")
        mon.send('{"execute": "quit"}')
        lc.check(p.wait(30) == 0, "the source quits with status 0")
    except (lc.qmp_test.CheckFailed, subprocess.TimeoutExpired) as e:
        lc.check(False, f"source: {e}")
    finally:
        text, tail = lc.end_and_tail(p, errlog, 8)
    lc.check("device needs reset" in text, "qlite logged the device's errors on stderr")
    print("# source's stderr:\n" + tail)
    return saved


def restore(a, tmp, state):
    args, console = vmm_args(a, tmp, "dest", ["-incoming", f"file:{state}"])
    try:
        r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=300)
        status, stderr = r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        status, stderr = None, (e.stderr or b"").decode(errors="replace")
    con = lc.Console(console).text()
    lc.check(status == PASS_STATUS, f"restored: the guest agent finishes and passes "
                                    f"(status {status}, {stderr.strip()[-300:]})")
    for what, pattern in (("vdb still NEEDS_RESET after the restore", r"ok \d+ - hostile vdb still"),
                          ("vdb back with its driver, read", r"ok \d+ - hostile vdb: back"),
                          ("vda, never attacked, works", r"ok \d+ - blk vda: read back")):
        lc.check(re.search(pattern, con) is not None, what)
    if status != PASS_STATUS:
        print("# last console lines:\n" + "\n".join("#   " + l for l in con.splitlines()[-15:]))


def main():
    a = lc.setup(__doc__)
    if isinstance(a, int):
        return a
    with tempfile.TemporaryDirectory(prefix="qlite-hostile-") as tmp:
        boot_test.write_file(os.path.join(tmp, "vda.img"), bytes(2 << 20))
        boot_test.write_file(os.path.join(tmp, "vdb.img"), bytes(1 << 20))
        state = os.path.join(tmp, "vm.state")
        if attack_and_save(a, tmp, state):
            restore(a, tmp, state)
        lc.keep_consoles(tmp, a.log_dir)
    return 1 if lc.failures else 0


if __name__ == "__main__":
    sys.exit(main())
