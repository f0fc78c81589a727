#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Live migration of a running Linux guest between qlite processes.

One guest's life across four processes, all on one shared disk image (qcow2,
whose metadata changes hands with it, checked by qemu-img at the end): the
agent's mig_workload rewrites 2 MiB of memory every round and writes, then
reads back, a chunk of its disk into a buffer only the device writes. While it
runs on the source A:

  1. migrate to B1 over a unix socket at 1 MiB/s, migrate_cancel mid-way:
     A reports cancelled and keeps running, B1 gives up and exits 1;
  2. migrate to B2 over TCP, SIGKILL B2 mid-way: A reports failed and keeps
     running, its guest intact;
  3. migrate live to C over a unix socket at 8 MiB/s, so that the first
     pass lasts several rounds: A ends in postmigrate with plausible counters
     and several passes, the transfer kept to the bandwidth, its images handed
     over (a cont on A is refused with the lock error), C's guest carries on;
  4. migrate live from C to D over TCP on loopback without a bandwidth
     limit: D's guest finishes the
     workload (every round once, in order, across A, C and D; memory, disk
     buffer and clock checked every round) and its disk check: exit 33.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "boot"))
sys.path.insert(0, HERE)
import boot_test  # noqa: E402
import guest  # noqa: E402
import linux_lifecycle_test as lc  # noqa: E402  Console, Monitor, check
import qmp_test  # noqa: E402

# Enough 200 ms rounds that the guest still runs when the last move is done
# (a guest that finishes on A or C ends that VM: its verdict exits qlite).
ROUNDS = 400
PASS_STATUS = 33
SLOW_BANDWIDTH = 1 << 20  # bytes/s: a migration that lasts long enough to be interrupted


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Vm:
    """One qlite process with a QMP socket and its own console file."""

    def __init__(self, a, tmp, name, extra):
        self.name = name
        self.sock = os.path.join(tmp, name + ".qmp")
        self.console = lc.Console(os.path.join(tmp, name + ".console"))
        append = guest.append(
            "qlite_agent.checks=mig_workload,blk", f"qlite_agent.mig_rounds={ROUNDS}",
            "qlite_agent.mig_disk=vda", f"qlite_agent.blk_seed={a.seed}")
        args = [a.vmm] + guest.boot_args(a.gdir) + ["-m", "256", "-nodefaults",
                "-display", "none", "-serial", f"file:{self.console.path}",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-drive", f"file={a.disk},format=qcow2,if=virtio", "-append", append,
                "-qmp", f"unix:{self.sock},server=on,wait=off"] + extra
        self.log = os.path.join(a.log_dir, name + ".stderr")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.mon = lc.Monitor(self.sock)
        self.mon.cmd("migrate-set-capabilities",
                     {"capabilities": [{"capability": "events", "state": True}]})

    def stderr(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace").strip()[-300:]

    def status(self):
        return self.mon.cmd("query-status")["return"]["status"]

    def rounds(self):
        return [int(n) for n in re.findall(r"mig round (\d+) ", self.console.text())]

    def wait_listening(self):
        """-incoming set up: the destination's query-migrate says setup."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.mon.cmd("query-migrate")["return"].get("status") == "setup":
                return True
            time.sleep(0.05)
        return False

    def wait_migration(self, want, timeout=300):
        """The MIGRATION events up to one of want; returns the last status."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self.mon.wait_event("MIGRATION", max(deadline - time.monotonic(), 0))
            if ev is None:
                return None
            if ev["data"]["status"] in want:
                return ev["data"]["status"]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_active(src, seconds):
    """Lets a migration run for a while; False when it ended before."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if src.mon.cmd("query-migrate")["return"].get("status") not in ("setup", "active"):
            return False
        time.sleep(0.1)
    return True


def rounds_go_on(vm, last, what):
    """The guest prints the rounds after last on vm's console: the second one,
    since the first may be a line cut in two by the switch to a destination."""
    ok = vm.console.wait(rf"mig round {last + 2} ", timeout=120, proc=vm.proc) is not None
    if not ok:
        tail = "\n# ".join(vm.console.text().splitlines()[-15:])
        print(f"# {vm.name}: exit status {vm.proc.poll()}, stderr: {vm.stderr()}\n"
              f"# console tail:\n# {tail}", flush=True)
    lc.check(ok, f"{what}: the guest goes on running on {vm.name} (round {last + 2})")


def interrupted(a, tmp, src, name, uri, how):
    """A migration stopped half-way, by migrate_cancel or by killing the destination."""
    dst = Vm(a, tmp, name, ["-incoming", uri])
    try:
        lc.check(dst.wait_listening(), f"{name} listens on {uri}")
        src.mon.cmd("migrate-set-parameters", {"max-bandwidth": SLOW_BANDWIDTH})
        r = src.mon.cmd("migrate", {"uri": uri})
        lc.check("return" in r, f"migrate {uri}: accepted ({r})")
        lc.check(wait_active(src, 1.5), f"{how}: the migration to {name} is still active "
                                        f"after 1.5 s at {SLOW_BANDWIDTH} bytes/s")
        if how == "cancel":
            src.mon.cmd("migrate_cancel")
            want = "cancelled"
        else:
            dst.proc.send_signal(signal.SIGKILL)
            want = "failed"
        got = src.wait_migration(("completed", "failed", "cancelled"), 60)
        lc.check(got == want, f"{how}: the source reports {want} ({got})")
        info = src.mon.cmd("query-migrate")["return"]
        lc.check(info.get("status") == want and
                 0 < info["ram"]["transferred"] < 64 << 20 and info["ram"]["remaining"] > 0,
                 f"{how}: query-migrate {want}, part of RAM sent ({info})")
        lc.check(src.status() == "running", f"{how}: the source is still running")
        rc = dst.proc.wait(60)
        print(f"# {name} exited with status {rc}: {dst.stderr()}", flush=True)
        if how == "cancel":
            lc.check(rc == 1 and "truncated" in dst.stderr() and not dst.rounds(),
                     f"{how}: {name} refuses the partial stream, exits 1, its guest never ran "
                     f"({rc}, {dst.stderr()})")
        rounds_go_on(src, src.rounds()[-1], how)
        src.mon.cmd("migrate-set-parameters", {"max-bandwidth": 128 << 20})
    except (qmp_test.CheckFailed, subprocess.TimeoutExpired, OSError) as e:
        lc.check(False, f"{how}: {e}")
    finally:
        dst.kill()


def live(a, tmp, src, name, uri, bandwidth):
    """A live migration to a new process at bandwidth bytes/s (0: no limit); returns it."""
    dst = Vm(a, tmp, name, ["-incoming", uri])
    lc.check(dst.wait_listening(), f"{name} listens on {uri}")
    src.mon.cmd("migrate-set-parameters", {"max-bandwidth": bandwidth})
    # return-path: the source completes once the destination has loaded the VM. libvirt
    # sets it on both sides; C leaves its own off (the stream carries the source's request).
    for vm in (src, dst) if name != "C" else (src,):
        r = vm.mon.cmd("migrate-set-capabilities",
                       {"capabilities": [{"capability": "return-path", "state": True}]})
        lc.check("return" in r, f"return-path on {vm.name} ({r})")
    before = src.rounds()[-1]
    src.mon.events.clear()
    start = time.monotonic()
    r = src.mon.cmd("migrate", {"uri": uri})
    lc.check("return" in r, f"migrate {uri}: accepted ({r})")
    got = src.wait_migration(("completed", "failed", "cancelled"))
    took = time.monotonic() - start
    lc.check(got == "completed", f"{uri}: MIGRATION completed on the source ({got})")
    passes = [e["data"]["pass"] for e in src.mon.events if e["event"] == "MIGRATION_PASS"]
    src.mon.events.clear()
    info = src.mon.cmd("query-migrate")["return"]
    ram = info.get("ram", {})
    print(f"# {src.name} -> {name} over {uri}: {took:.2f} s, total-time {info.get('total-time')}"
          f" ms, downtime {info.get('downtime')} ms, {ram.get('dirty-sync-count')} passes, "
          f"{ram.get('transferred')} bytes", flush=True)
    lc.check(info.get("status") == "completed" and ram.get("total") == 256 << 20 and
             ram.get("remaining") == 0 and ram.get("dirty-sync-count", 0) >= 2 and
             ram.get("normal", 0) + ram.get("duplicate", 0) >= (256 << 20) // 4096 and
             ram.get("transferred", 0) >= ram.get("normal", 0) * 4096 and
             0 <= info.get("downtime", -1) <= info.get("total-time", 0),
             f"query-migrate: completed, several passes, plausible counters ({info})")
    if bandwidth:
        least = info.get("ram", {}).get("transferred", 0) * 1000 // bandwidth
        lc.check(info.get("total-time", 0) >= least * 0.8,
                 f"max-bandwidth {bandwidth}: {info.get('total-time')} ms for what takes "
                 f"{least} ms at that rate")
    lc.check(passes[:2] == [1, 2] and passes == sorted(passes),
             f"MIGRATION_PASS events 1, 2, ... ({passes})")
    lc.check(src.status() == "postmigrate", f"{src.name} is in postmigrate")
    lc.check(src.rounds()[-1] >= before, f"the guest ran on {src.name} during the migration")
    lc.check(dst.wait_migration(("completed", "failed"), 60) == "completed" or
             dst.mon.cmd("query-migrate")["return"].get("status") == "completed",
             f"{name}: incoming migration completed")
    lc.check(dst.status() == "running", f"{name} runs the guest")
    return dst


def quit_source(src, dst):
    # The images belong to the destination now: the source cannot run again.
    r = src.mon.cmd("cont")
    err = r.get("error", {}).get("desc", "")
    lc.check("lock" in err and src.status() == "postmigrate",
             f"cont on {src.name} after the migration is refused: {dst.name} has the images "
             f"({r})")
    src.mon.send('{"execute": "quit"}')
    lc.check(src.proc.wait(30) == 0, f"{src.name} quits with status 0")


def main():
    a = lc.setup(__doc__)
    if isinstance(a, int):
        return a
    vms = []
    with tempfile.TemporaryDirectory(prefix="qlite-live-") as tmp:
        # A qcow2 disk: its metadata changes hands at every switch-over too.
        a.disk = os.path.join(tmp, "vda.qcow2")
        a.seed = int.from_bytes(os.urandom(3), "little") + 1
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", a.disk, "2M"], check=True)
        try:
            src = Vm(a, tmp, "A", [])
            vms.append(src)
            if not lc.check(src.console.wait(r"mig round 3 ", proc=src.proc) is not None,
                            "A: the workload reaches round 3"):
                lc.print_threads(src.proc)
                raise qmp_test.CheckFailed("A's guest never ran its workload")
            interrupted(a, tmp, src, "B1", f"unix:{tmp}/b1.mig", "cancel")
            interrupted(a, tmp, src, "B2", f"tcp:127.0.0.1:{free_port()}", "kill")
            # Slow enough that the first pass spans disk reads into the device-only buffer.
            c = live(a, tmp, src, "C", f"unix:{tmp}/c.mig", 8 << 20)
            vms.append(c)
            quit_source(src, c)
            rounds_go_on(c, src.rounds()[-1], "after the migration to C")
            d = live(a, tmp, c, "D", f"tcp:127.0.0.1:{free_port()}", 0)
            vms.append(d)
            quit_source(c, d)
            rc = d.proc.wait(900)
            text = d.console.text()
            lc.check(rc == PASS_STATUS, f"D: the guest agent finishes (status {rc}, "
                                        f"{d.stderr()})")
            # A line cut by a switch-over ends on the next console: read them as one.
            both = src.console.text() + c.console.text() + text
            seen = [int(n) for n in re.findall(r"mig round (\d+) ", both)]
            lc.check(seen == list(range(1, ROUNDS + 1)),
                     f"every round once, in order, across A, C and D ({src.rounds()[-1:]}, "
                     f"{c.rounds()[:1]}..{c.rounds()[-1:]}, {d.rounds()[:1]}..{d.rounds()[-1:]})")
            lc.check(re.search(r"ok \d+ - mig_workload: .* 0 with memory changed under us, "
                               r"clock went back 0 times, disk vda: 0 bad", text) is not None,
                     "memory, the device-written buffer and the clock intact across both moves")
            lc.check(re.search(r"ok \d+ - blk vda: read back", text) is not None,
                     "the disk works on D")
            lc.check("TAP version" not in c.console.text() + text,
                     "C and D did not start the guest agent again")
        except (qmp_test.CheckFailed, subprocess.TimeoutExpired, OSError) as e:
            lc.check(False, f"{e}")
        finally:
            for vm in vms:
                vm.kill()
            lc.keep_consoles(tmp, a.log_dir)
        rc, out = boot_test.qemu_img("check", a.disk)
        lc.check(rc == 0, f"qemu-img check of the disk after the moves: status {rc} ({out[-200:]})")
    return 1 if lc.failures else 0


if __name__ == "__main__":
    sys.exit(main())
