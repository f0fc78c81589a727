#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The VM lifecycle through QMP on a booted Linux test guest.

One VM, driven by two monitors:
- -S: nothing runs (no console output) until cont;
- the guest agent passes, then prints a heartbeat with its monotonic clock;
- a client that floods commands and never reads the replies stalls neither
  the guest nor the other monitor;
- stop: the console and the guest's clock stand still; cont: both go on,
  and the guest clock did not count the time stopped;
- system_reset: RESET, the guest boots again and its agent runs again;
- system_powerdown: POWERDOWN, the guest's power button handler powers off
  (ACPI S5), SHUTDOWN guest-shutdown, exit status 0.
Then two short runs: quit mid-boot and SIGTERM mid-boot end cleanly (0).

Usage: linux_lifecycle_test.py --vmm QLITE [--log-dir DIR]   (exit 0, 1, 77 skip)
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "boot"))
sys.path.insert(0, HERE)
import guest  # noqa: E402  the test guest
import qmp_test  # noqa: E402  Client

BOOT_TIMEOUT = 400  # one emulated boot to the verdict, with margin for a loaded host
HEARTBEAT_MS = 300
PAUSE_S = 4.0
failures = []


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


class Console:
    """The guest console, written by the VMM to a file."""

    def __init__(self, path):
        self.path = path

    def text(self):
        try:
            with open(self.path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait(self, pattern, count=1, timeout=BOOT_TIMEOUT, proc=None):
        """Waits until pattern occurs count times; returns the matches or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.findall(pattern, self.text())
            if len(found) >= count:
                return found
            if proc is not None and proc.poll() is not None:
                return None
            time.sleep(0.2)
        return None

    def heartbeats(self):
        return [(int(n), int(t)) for n, t in
                re.findall(r"qlite-agent: heartbeat (\d+) monotonic (\d+)", self.text())]


class Monitor(qmp_test.Client):
    """A negotiated QMP client that keeps the events it reads."""

    def __init__(self, path):
        super().__init__(path, connect_timeout=10)
        self.events = []
        self.negotiate()

    def cmd(self, name, args=None):
        evs = []
        reply = self.execute(name, args, events=evs).obj
        self.events += [m.obj for m in evs]
        return reply

    def wait_event(self, name, timeout):
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e["event"] == name:
                    self.events.remove(e)
                    return e
            left = deadline - time.monotonic()
            raw = self.recv_raw(max(left, 0)) if left > 0 else None
            if raw is None:
                return None
            self.events.append(qmp_test.Msg(raw).obj)


def start(a, tmp, name, extra, append):
    console = os.path.join(tmp, name + ".console")
    args = [a.vmm] + guest.boot_args(a.gdir) + ["-m", "256", "-smp", "1",
            "-display", "none", "-serial", f"file:{console}",
            "-append", guest.append(append)] + extra
    log = open(os.path.join(a.log_dir, name + ".stderr"), "wb")
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    return p, Console(console)


def flood(path, stop):
    """A client that sends commands as fast as it can and never reads."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(b'{"execute": "qmp_capabilities"}')
    s.setblocking(False)
    burst = b'{"execute": "query-version"}' * 1000
    sent = 0
    while not stop.is_set():
        try:
            sent += s.send(burst)
        except BlockingIOError:
            time.sleep(0.05)  # the VMM stopped reading us: it should
    stop.sent = sent
    s.close()


def lifecycle(a, tmp):
    sock_a, sock_b = os.path.join(tmp, "a.sock"), os.path.join(tmp, "b.sock")
    p, con = start(a, tmp, "lifecycle",
                   ["-S", "-qmp", f"unix:{sock_a},server=on,wait=off",
                    "-qmp", f"unix:{sock_b},server=on,wait=off"],
                   f"qlite_agent.checks=cpus,power_button "
                   f"qlite_agent.heartbeat_ms={HEARTBEAT_MS}")
    try:
        mon = Monitor(sock_a)
        st = mon.cmd("query-status")["return"]
        check(st["status"] == "prelaunch" and not st["running"], f"-S: prelaunch ({st})")
        time.sleep(1.5)
        check(con.text() == "", "-S: the guest prints nothing before cont")
        mon.cmd("cont")
        check(mon.wait_event("RESUME", 5) is not None, "cont: RESUME")
        check(con.wait(r"qlite-agent: PASS", proc=p) is not None,
              "the agent passes (power button handler installed)")
        check(con.wait(r"heartbeat 3 ", timeout=60) is not None, "the guest prints heartbeats")

        # A client that never reads its replies.
        stop = threading.Event()
        t = threading.Thread(target=flood, args=(sock_b, stop), daemon=True)
        t.start()
        time.sleep(2)
        before = len(con.heartbeats())
        st = mon.cmd("query-status")["return"]
        check(st["status"] == "running", "the other monitor answers during the flood")
        check(con.wait(r"heartbeat \d+ ", count=before + 2, timeout=60) is not None,
              "the guest keeps running during the flood")
        stop.set()
        t.join(10)
        check(getattr(stop, "sent", 0) < 4 << 20,
              f"the flooding client was throttled ({getattr(stop, 'sent', 0)} bytes taken)")

        # stop / cont: console and guest clock stand still.
        mon.cmd("stop")
        check(mon.wait_event("STOP", 5) is not None, "stop: STOP")
        check(mon.cmd("query-status")["return"]["status"] == "paused", "stop: paused")
        time.sleep(0.5)
        text, beats = con.text(), con.heartbeats()
        time.sleep(PAUSE_S)
        check(con.text() == text, f"stopped: no console output in {PAUSE_S:.0f} s")
        mon.cmd("cont")
        check(mon.wait_event("RESUME", 5) is not None, "cont: RESUME")
        after = con.wait(r"heartbeat \d+ ", count=len(beats) + 1, timeout=30)
        check(after is not None, "cont: heartbeats go on")
        if after and beats:
            n0, t0 = beats[-1]
            n1, t1 = con.heartbeats()[len(beats)]
            gap = (t1 - t0) / 1e9
            check(n1 == n0 + 1 and gap < PAUSE_S - 1,
                  f"the guest clock did not count the stop: heartbeat {n0}->{n1} "
                  f"{gap:.2f} s of guest time across {PAUSE_S + 0.5:.1f} s stopped")

        # system_reset: the guest boots again.
        mon.cmd("system_reset")
        ev = mon.wait_event("RESET", 5)
        check(ev is not None and ev["data"] == {"guest": False,
                                                "reason": "host-qmp-system-reset"},
              f"system_reset: RESET host-qmp-system-reset ({ev})")
        check(con.wait(r"qlite-agent: PASS", count=2, proc=p) is not None,
              "after system_reset the guest boots and its agent passes again")
        check(len(re.findall(r"TAP version 13", con.text())) == 2, "the agent ran twice")
        con.wait(r"heartbeat 1 ", count=2, timeout=30)

        # system_powerdown: ACPI power button, the guest powers off.
        mon.cmd("system_powerdown")
        check(mon.wait_event("POWERDOWN", 5) is not None, "system_powerdown: POWERDOWN")
        ev = mon.wait_event("SHUTDOWN", 120)
        check(ev is not None and ev["data"] == {"guest": True, "reason": "guest-shutdown"},
              f"the guest powers off: SHUTDOWN guest-shutdown ({ev})")
        check("power button pressed" in con.text(), "the guest saw the power button")
        status = p.wait(30)
        check(status == 0, f"exit status 0 after the guest's power-off ({status})")
    except qmp_test.CheckFailed as e:
        check(False, f"QMP: {e}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def mid_boot(a, tmp, how):
    sock = os.path.join(tmp, how + ".sock")
    p, con = start(a, tmp, "mid-boot-" + how,
                   ["-qmp", f"unix:{sock},server=on,wait=off"], "loglevel=7")  # after quiet
    try:
        mon = Monitor(sock)
        check(con.wait(r"Linux version", timeout=120, proc=p) is not None,
              f"{how}: the guest is booting")
        if how == "quit":
            mon.send('{"execute": "quit"}')
            reason = "host-qmp-quit"
        else:
            p.send_signal(signal.SIGTERM)
            reason = "host-signal"
        ev = mon.wait_event("SHUTDOWN", 10)
        check(ev is not None and ev["data"]["reason"] == reason,
              f"{how} mid-boot: SHUTDOWN {reason} ({ev})")
        status = p.wait(10)
        check(status == 0, f"{how} mid-boot: exit status 0 ({status})")
    except (qmp_test.CheckFailed, subprocess.TimeoutExpired) as e:
        check(False, f"{how}: {e}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def threads(pid):
    """Each thread of a VMM: name, state, CPU seconds, what it waits in. Printed
    when a guest stays silent: vCPUs busy in KVM_RUN (a guest spinning) or
    blocked (a guest halted for an interrupt that never came) tell apart what
    the console cannot."""
    rows = []
    tick = os.sysconf("SC_CLK_TCK")
    for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                wchan = f.read().strip() or "-"
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        rows.append(f"{name}/{tid} {fields[0]} {cpu:.1f} s {wchan}")
    return rows


def print_threads(proc):
    """threads() of a running VMM as # lines, twice a second apart."""
    if proc is None or proc.poll() is not None:
        return
    for _ in range(2):
        try:
            print("# threads: " + "; ".join(threads(proc.pid)), flush=True)
        except OSError:
            return
        time.sleep(1)


def migrate_until_done(mon, uri):
    """migrate to uri (the events capability on); the reply and the MIGRATION
    event that ended it, completed or failed (None after 120 s without one)."""
    r = mon.cmd("migrate", {"uri": uri})
    if "return" in r:
        for _ in range(3):
            ev = mon.wait_event("MIGRATION", 120)
            if ev is None or ev["data"]["status"] in ("completed", "failed"):
                return r, ev
    return r, None


def end_and_tail(p, path, lines):
    """Kills p if it still runs; the last lines of path (its stderr), as # lines."""
    if p.poll() is None:
        p.kill()
        p.wait()
    with open(path, errors="replace") as f:
        text = f.read().strip()
    return text, "\n".join("#   " + l for l in text.splitlines()[-lines:])


def keep_consoles(tmp, log_dir):
    """Moves the consoles the test's VMs wrote in tmp to log_dir, for a look
    after a failure (a copy: /tmp may be another file system, a tmpfs)."""
    for name in os.listdir(tmp):
        if name.endswith(".console"):
            shutil.move(os.path.join(tmp, name), os.path.join(log_dir, name))


def setup(description):
    """The Linux QMP tests' command line (--vmm, --log-dir) and checks: the options,
    with gdir the test guest's directory, or the exit status (77: skip, 1: no guest)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--log-dir", default=".")
    a = ap.parse_args()
    qmp_test.OPTS = argparse.Namespace(verbose=False)
    status = guest.missing(os.path.basename(sys.argv[0]))
    if status is not None:
        return status
    a.gdir = guest.guest_dir()
    os.makedirs(a.log_dir, exist_ok=True)
    return a


def main():
    a = setup(__doc__)
    if isinstance(a, int):
        return a
    with tempfile.TemporaryDirectory(prefix="qlite-linux-lifecycle-") as tmp:
        lifecycle(a, tmp)
        mid_boot(a, tmp, "quit")
        mid_boot(a, tmp, "sigterm")
        keep_consoles(tmp, a.log_dir)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
