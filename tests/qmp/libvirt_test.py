#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""libvirt drives qlite as it drives QEMU: a domain whose <emulator> is
qlite, the Linux test guest with a raw disk, user networking and its serial
console through virtlogd, run by a libvirtd of the test's own (its state in
a private mount namespace, tests/qmp/libvirt-ns.sh).

virsh define, start (the guest agent passes: its CPUs, its disk pattern),
dominfo (running), domstats (vCPUs, disk), suspend (paused, the console
silent), resume, save to a file and restore (the workload's round counter
goes on with its memory check intact), reset (the guest boots again),
shutdown (the ACPI power button: the guest powers off and the domain is
shut off), start again, destroy.

This script is the driver outside; run with --inside (by itself, in the
namespace) it does the virsh steps and reports TAP lines.

Usage: libvirt_test.py --vmm QLITE [--log-dir DIR]   (exit 0, 1, 77 skip)
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "boot"))
sys.path.insert(0, HERE)
import guest  # noqa: E402
from linux_lifecycle_test import Console, check, failures  # noqa: E402

NAME = "qlite-libvirt-test"
ROUNDS = 600  # 200 ms each: the save and restore land in the middle
SEED = 0x5eed


TIMES = {}  # the wall time of each virsh operation, seconds


def virsh(*args, timeout=120, uri="qemu:///system", op=None):
    t0 = time.monotonic()
    r = subprocess.run(["virsh", "-c", uri] + list(args), capture_output=True, text=True,
                       timeout=timeout)
    if args[0] not in ("domstate", "undefine"):
        TIMES.setdefault(op or args[0], time.monotonic() - t0)
    out = "\n".join(line for line in (r.stdout + r.stderr).splitlines()
                    if line.strip() and not line.startswith("Authorization not available"))
    return r.returncode, out


def domain_xml(a, disk, console):
    append = guest.append("qlite_agent.checks=cpus,blk,power_button,mig_workload",
                          "qlite_agent.cpus=2", "qlite_agent.blk_disk=vda",
                          f"qlite_agent.blk_seed={SEED}", f"qlite_agent.mig_rounds={ROUNDS}",
                          "qlite_agent.heartbeat_ms=500")
    return f"""<domain type='kvm'>
  <name>{NAME}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{a.gdir}/vmlinuz</kernel>
    <initrd>{a.gdir}/initrd.gz</initrd>
    <cmdline>{append}</cmdline>
  </os>
  <cpu mode='host-passthrough'/>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>{os.path.abspath(a.vmm)}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='user'><model type='virtio'/></interface>
    <serial type='file'><source path='{console}' append='on'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def rounds(con):
    return [int(n) for n in re.findall(r"mig round (\d+) ", con.text())]


def state(uri="qemu:///system"):
    rc, out = virsh("domstate", NAME, uri=uri)
    return out.splitlines()[0] if rc == 0 and out else ""


def wait_state(want, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state() == want:
            return True
        time.sleep(0.5)
    return False


def migrate_there_and_back(a):
    """virsh migrate --live to the second libvirtd, then back, the guest running throughout."""
    there = f"qemu+unix:///system?socket={a.dest_socket}"
    here = "qemu+unix:///system?socket=/run/libvirt/libvirt-sock"
    for op, uri, dest, port in (("migrate", "qemu:///system", there, 49152),
                                ("migrate back", there, here, 49153)):
        rc, out = virsh("migrate", "--live", "--unsafe", NAME, dest, "--migrateuri",
                        f"tcp://127.0.0.1:{port}", "--listen-address", "127.0.0.1",
                        uri=uri, op=op, timeout=300)
        check(rc == 0 and state(dest) == "running" and state(uri) in ("shut off", ""),
              f"virsh {op} --live: running on the other libvirtd, gone from this one "
              f"({out}; {state(dest)!r}, {state(uri)!r})")


def inside(a):
    """The virsh steps, in the namespace beside libvirtd; the console is kept in the log dir."""
    try:
        return steps(a)
    finally:
        console = os.path.join(a.tmp, "console.log")
        if os.path.exists(console):
            shutil.copy(console, os.path.join(a.log_dir, "libvirt-console.log"))


def steps(a):
    tmp = a.tmp
    disk, console = os.path.join(tmp, "disk.img"), os.path.join(tmp, "console.log")
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    xml = os.path.join(tmp, "domain.xml")
    with open(xml, "w") as f:
        f.write(domain_xml(a, disk, console))
    con = Console(console)
    # libvirtd's capability probe of the emulator (its cache is empty: a fresh state dir).
    rc, out = virsh("domcapabilities", "--emulatorbin", os.path.abspath(a.vmm), "--virttype",
                    "kvm", op="probe")
    check(rc == 0 and "<domainCapabilities>" in out and "<domain>kvm</domain>" in out,
          f"libvirtd probes the emulator: a KVM domain ({out[-200:]!r})")
    rc, out = virsh("define", xml)
    check(rc == 0, f"virsh define ({out})")
    rc, out = virsh("start", NAME)
    check(rc == 0, f"virsh start ({out})")
    check(con.wait(r"ok \d+ - blk vda: read back"), "the guest agent's disk check passes")
    check(con.wait(r"ok \d+ - cpus online: 2"), "the guest sees its 2 vCPUs")
    rc, out = virsh("dominfo", NAME)
    check(rc == 0 and re.search(r"State:\s+running", out) is not None, "dominfo: running")
    rc, out = virsh("domstats", NAME)
    stats = dict(line.strip().split("=", 1) for line in out.splitlines() if "=" in line)
    check(rc == 0 and stats.get("vcpu.current") == "2" and stats.get("block.0.path") == disk,
          f"domstats: vCPUs and the disk ({out[-300:]!r})")
    # query-stats (KVM's own counters) and query-blockstats (the disk's).
    counters = {k: int(stats.get(k, "0")) for k in ("vcpu.0.exits.sum", "vcpu.1.exits.sum",
                                                     "block.0.rd.reqs", "block.0.rd.bytes",
                                                     "block.0.wr.reqs", "block.0.allocation")}
    check(all(v > 0 for v in counters.values()),
          f"domstats: KVM's exit counters and the disk's I/O counters ({counters})")

    check(con.wait(r"mig round 10 "), "the workload runs")
    rc, out = virsh("suspend", NAME)
    check(rc == 0 and state() == "paused", f"suspend: paused ({out})")
    before = len(con.text())
    time.sleep(2)
    check(len(con.text()) == before, "suspended: the console is silent")
    rc, out = virsh("resume", NAME)
    check(rc == 0 and state() == "running", f"resume: running ({out})")
    check(con.wait(r"mig round \d+ ", count=len(rounds(con)) + 3), "resumed: the rounds go on")

    saved = os.path.join(tmp, "domain.save")
    rc, out = virsh("save", NAME, saved, timeout=300)
    check(rc == 0 and state() == "shut off", f"save to a file ({out})")
    last = rounds(con)[-1] if rounds(con) else 0
    rc, out = virsh("restore", saved, timeout=300)
    check(rc == 0 and state() == "running", f"restore ({out})")
    migrate_there_and_back(a)
    check(con.wait(r"ok \d+ - mig_workload: .* 0 with memory changed under us", timeout=300),
          "after the restore the workload finishes, its memory intact")
    seen = rounds(con)
    if not check(seen == list(range(1, ROUNDS + 1)),
                 f"across the restore (after round {last}) and both migrations the rounds go "
                 f"on, none lost or repeated ({seen[-1:]} of {ROUNDS})"):
        missing = sorted(set(range(1, ROUNDS + 1)) - set(seen))
        repeated = sorted({n for n in seen if seen.count(n) > 1})
        odd = [line for line in con.text().splitlines()
               if "round" in line and not re.search(r"mig round \d+ monotonic \d+\s*$", line)]
        print(f"# missing {missing[:10]}, repeated {repeated[:10]}, other lines with "
              f"'round': {odd[:5]}")

    boots = con.text().count("TAP version")
    rc, out = virsh("reset", NAME)
    check(rc == 0 and con.wait("TAP version", count=boots + 1), f"reset: the guest boots again "
                                                               f"({out})")
    check(con.wait(r"ok \d+ - power_button: handler", count=2), "the power button handler runs")
    rc, out = virsh("shutdown", NAME)
    check(rc == 0 and wait_state("shut off", 90) and
          "power button pressed, powering off" in con.text(),
          f"shutdown: the guest powers off, the domain is shut off ({out}, {state()})")
    rc, out = virsh("start", NAME)
    check(rc == 0 and con.wait("TAP version", count=boots + 2), f"start again ({out})")
    rc, out = virsh("destroy", NAME)
    check(rc == 0 and state() == "shut off", f"destroy ({out})")
    virsh("undefine", NAME)
    print("# virsh wall times: " + ", ".join(f"{op} {t:.2f} s" for op, t in TIMES.items()))
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--log-dir", default=".")
    ap.add_argument("--inside", metavar="TMP", help=argparse.SUPPRESS)
    ap.add_argument("--gdir", help=argparse.SUPPRESS)
    ap.add_argument("--dest-socket", help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.makedirs(a.log_dir, exist_ok=True)
    if a.inside:
        a.tmp = a.inside
        return inside(a)
    status = guest.missing("libvirt")
    if status is not None:
        return status
    if os.geteuid() != 0 or not shutil.which("libvirtd"):
        return guest.skip("libvirt", "needs root and libvirt-daemon-system (scripts/setup.sh)")
    a.gdir = guest.guest_dir()
    ns = os.path.join(HERE, "libvirt-ns.sh")
    with tempfile.TemporaryDirectory(prefix="qlite-libvirt-") as tmp:
        # The migrations' destination: a second libvirtd, in a namespace of its own.
        dest = os.path.join(tmp, "dest")
        os.mkdir(dest)
        second = subprocess.Popen(["unshare", "-m", ns, dest, "sleep", "1500"])
        try:
            r = subprocess.run(["unshare", "-m", ns, tmp, sys.executable,
                                os.path.abspath(__file__), "--vmm", a.vmm, "--log-dir",
                                os.path.abspath(a.log_dir), "--inside", tmp, "--gdir", a.gdir,
                                "--dest-socket",
                                os.path.join(dest, "libvirt", "run", "libvirt-sock")],
                               timeout=1500)
        finally:
            second.terminate()
            second.wait()
        for d in (tmp, dest):
            log = os.path.join(d, "libvirt", "log", "qemu", NAME + ".log")
            if r.returncode != 0 and os.path.exists(log):
                print(f"# the domain's log ({d}):\n" + "\n".join(
                    "#   " + line for line in open(log).read().splitlines()[-30:]))
        return r.returncode


if __name__ == "__main__":
    sys.exit(main())
