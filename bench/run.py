#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""qlite beside QEMU 7.2 on the same guest: one command, one table.

Boots the test guest (tests/guest: Debian's kernel, busybox and the guest
agent) under qlite and under QEMU (-M q35 and
-M microvm), N runs each, alternating the order every run so machine noise
hits every VMM alike, and reports per figure the median, the spread (min-max)
and the ratio qlite/QEMU. Each boot yields every guest figure at once: the
agent times VM exits and 4 KiB disk I/O from guest userspace and reports
its verdict through isa-debug-exit. Host-side figures (the device model alone)
come from build-release/bench/blk-model. With --net, one more boot per VMM
and backend (slirp user networking, a tap in a network namespace of its own)
moves TCP streams both ways between the guest and peers on the host
(tests/boot/net_setup.py) and reports their rates.

Output: a Markdown table on stdout, bench/results/latest.csv and a chart of
the ratios, bench/results/latest.png (gnuplot). docs/performance.md says what
each figure means. Without a usable /dev/kvm the comparisons run inside a
nested KVM host (scripts/kvm-host.sh): compare ratios only there.
"""
import argparse
import csv
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "boot"))
import guest  # noqa: E402  the test guest
import net_setup  # noqa: E402  host-side TCP peers of the agent's net checks
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "qmp"))
import qmp_test  # noqa: E402  the QMP client of the protocol tests

qmp_test.OPTS = argparse.Namespace(verbose=False)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RESULTS = os.path.join(ROOT, "bench", "results")
GUEST_DIR = os.path.join(ROOT, "tests", "guest")
KVM_HOST = os.path.join(ROOT, "scripts", "kvm-host.sh")
RAM_MIB = 256
DISK_MIB = 8
BOOT_TIMEOUT = 600
PASS_STATUS = 33
APT_PACKAGES = ["qemu-system-x86", "gnuplot-nox"]

# The VMMs: qlite, and QEMU with the machine types that have our devices.
# Guest RAM is a memfd for both, so "VMM memory" (RssAnon + RssFile) leaves it out.
def qemu_common(ram_mib=RAM_MIB):
    return ["-cpu", "host,-arch-capabilities", "-accel", "kvm", "-nodefaults", "-no-user-config",
            "-object", f"memory-backend-memfd,id=ram,size={ram_mib}M"]


# Start-latency runs only: every vCPU ioctl traced would slow a whole boot down.
QEMU_TRACE = ["-trace", "kvm_vcpu_ioctl", "-msg", "timestamp=on"]
VMMS = {
    "qlite": dict(label="qlite"),
    "q35": dict(label="QEMU q35", machine="q35,memory-backend=ram"),
    "microvm": dict(label="QEMU microvm", machine="microvm,rtc=on,memory-backend=ram"),
}
KVM_RUN_IOCTL = "0xae80"

# Every figure the table reports: (key, label, unit, better). A figure no VMM
# can produce yet is still listed, as n/a.
FIGURES = [
    ("start_kvm_run", "start -> first KVM_RUN", "ms", "lower"),
    ("start_console", "start -> first console byte", "ms", "lower"),
    ("boot", "start -> agent verdict", "s", "lower"),
    ("mem_start", "VMM memory at first KVM_RUN", "MiB", "lower"),
    ("mem_early", "VMM memory at first console byte", "MiB", "lower"),
    ("mem_peak", "VMM memory, peak", "MiB", "lower"),
    ("exit_pio", "exit cost: port write", "ns/exit", "lower"),
    ("exit_mmio", "exit cost: MMIO read", "ns/exit", "lower"),
]
for _op in ("seq-read", "seq-write", "rand-read", "rand-write"):
    for _qd in ("qd1", "qd16"):
        FIGURES.append((f"disk_{_op}_{_qd}", f"guest disk {_op} 4k {_qd}", "IOPS", "higher"))
for _op in ("read", "write"):
    for _qd in ("1", "32"):
        FIGURES.append((f"model_{_op}_qd{_qd}", f"device model {_op} 4k qd{_qd} (host)",
                        "req/s", "higher"))
for _net in ("slirp", "tap"):
    for _dir in ("guest->host", "host->guest"):
        FIGURES.append((f"net_{_net}_{_dir}", f"TCP {_dir} via {_net}", "MiB/s", "higher"))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_packages():
    missing = [p for p in APT_PACKAGES
               if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                                 text=True).stdout != "install ok installed"]
    if missing:
        log(f"installing {' '.join(missing)}")
        sh(["apt-get", "update", "-qq"])
        sh(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing,
           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def build_release():
    bdir = os.path.join(ROOT, "build-release")
    if not os.path.exists(os.path.join(bdir, "build.ninja")):
        sh(["meson", "setup", bdir, "--buildtype=release"], cwd=ROOT, stdout=subprocess.DEVNULL)
    sh(["ninja", "-C", bdir], stdout=subprocess.DEVNULL)
    return bdir


def guest_dir():
    """The test guest (Debian's kernel, the agent's initramfs), built if needed."""
    return guest.guest_dir() or subprocess.run(
        [os.path.join(GUEST_DIR, "build-guest.sh")], check=True, capture_output=True,
        text=True).stdout.strip().splitlines()[-1]


def vmm_command(vmm, qlite, kernel, disk, append, trace=False, ram_mib=RAM_MIB, serial="stdio",
                exit_device=True, extra=()):
    """The command line of one VMM; disk None for none, extra appended (QMP, -incoming)."""
    common = ["-m", str(ram_mib), "-display", "none", "-serial", serial]
    if exit_device:
        common += ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
    common += guest.boot_args(kernel) + ["-append", append] + list(extra)
    if disk is None:
        drive = []
    elif vmm == "microvm":
        drive = ["-drive", f"file={disk},format=raw,if=none,id=d0",
                 "-device", "virtio-blk-device,drive=d0"]
    else:
        drive = ["-drive", f"file={disk},format=raw,if=virtio"]
    if vmm == "qlite":
        # -nodefaults as for QEMU: no default NIC.
        return [qlite, "-nodefaults"] + drive + common
    return (["qemu-system-x86_64", "-M", VMMS[vmm]["machine"]] + qemu_common(ram_mib) +
            (QEMU_TRACE if trace else []) + drive + common)


def own_rss_mib(pid):
    """Resident memory of the VMM itself: anonymous + file pages, not the guest's memfd."""
    try:
        with open(f"/proc/{pid}/status") as f:
            kb = {l.split(":")[0]: int(l.split()[1]) for l in f if l.startswith("Rss")}
    except (OSError, ValueError, IndexError):
        return None
    return (kb.get("RssAnon", 0) + kb.get("RssFile", 0)) / 1024


class Run:
    """One boot: streams the console and stderr, samples memory, times events."""

    def __init__(self, vmm, cmd, env, watch=(), log_path=None, mark=None):
        """watch: (console regex, threading.Event) pairs, set when a line matches;
        log_path: a file the console is written to as it comes (a stalled boot shows);
        mark: a console regex whose first match is timed (first_match, seconds)."""
        self.vmm = vmm
        self.mark = mark
        self.first_match = None
        self.log = open(log_path, "w") if log_path else None
        self.watch = list(watch)
        self.console = []
        self.stderr_lines = []
        self.first_console = None
        self.verdict = None
        self.first_kvm_run = None
        self.mem_early = None
        self.mem_peak = 0.0
        self.t0 = time.monotonic()
        self.t0_wall = time.time()
        self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
        self.threads = [threading.Thread(target=self._read_console, daemon=True),
                        threading.Thread(target=self._read_stderr, daemon=True),
                        threading.Thread(target=self._sample_memory, daemon=True)]
        for t in self.threads:
            t.start()

    def _read_console(self):
        buf = b""
        while True:
            chunk = self.p.stdout.read1(4096)
            if not chunk:
                break
            now = time.monotonic()
            if self.first_console is None:
                self.first_console = now - self.t0
                self.mem_early = own_rss_mib(self.p.pid)
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for l in lines:
                text = l.decode(errors="replace")
                self.console.append(text)
                if self.log:
                    self.log.write(text + "\n")
                    self.log.flush()
                if "qlite-agent: PASS" in text or "qlite-agent: FAIL" in text:
                    self.verdict = now - self.t0
                if self.mark and self.first_match is None and re.search(self.mark, text):
                    self.first_match = now - self.t0
                for rx, event in self.watch:
                    if re.search(rx, text):
                        event.set()
        if buf:
            self.console.append(buf.decode(errors="replace"))
            if self.log:
                self.log.write(self.console[-1] + "\n")
        if self.log:
            self.log.close()

    def _read_stderr(self):
        for raw in self.p.stderr:
            l = raw.decode(errors="replace").rstrip()
            self.stderr_lines.append(l)
            if self.first_kvm_run is not None:
                continue
            # qlite (G_MESSAGES_DEBUG=qlite-cpu): CLOCK_MONOTONIC, the clock of t0.
            m = re.search(r"first KVM_RUN at monotonic (\d+\.\d+)", l)
            if m:
                self.first_kvm_run = float(m.group(1)) - self.t0
            # QEMU's log trace backend: "PID@SECONDS.USEC:kvm_vcpu_ioctl ... type 0xae80".
            m = re.search(r"@(\d+\.\d+):kvm_vcpu_ioctl .*type " + KVM_RUN_IOCTL, l)
            if m:
                self.first_kvm_run = float(m.group(1)) - self.t0_wall

    def _sample_memory(self):
        while self.p.poll() is None:
            rss = own_rss_mib(self.p.pid)
            if rss is not None:
                self.mem_peak = max(self.mem_peak, rss)
            time.sleep(0.05)

    def wait(self, timeout):
        try:
            status = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            status = None
        for t in self.threads:
            t.join(timeout=5)
        return status

    def figures(self):
        f = {"start_console": ms(self.first_console), "boot": self.verdict, "mem_early": self.mem_early,
             "mem_peak": self.mem_peak or None}
        text = "\n".join(self.console)
        for kind, key in (("pio-write", "exit_pio"), ("mmio-read", "exit_mmio")):
            m = re.search(r"# exit-cost " + kind + r": .*?, ([\d.]+) ns/exit", text)
            f[key] = float(m.group(1)) if m else None
        for m in re.finditer(r"# blk-bench (\S+) 4k (qd\d+): (\d+) IOPS", text):
            f[f"disk_{m.group(1)}_{m.group(2)}"] = float(m.group(3))
        return f


def ms(seconds):
    return None if seconds is None else seconds * 1000


def device_model(bdir):
    """Host-side virtio-blk throughput through the fake driver: qlite's device model only."""
    out = subprocess.run([os.path.join(bdir, "bench", "blk-model")], capture_output=True,
                         text=True, timeout=120)
    f = {}
    for m in re.finditer(r"^(read|write)\s+(\d+)\s+(\d+)", out.stdout, re.M):
        f[f"model_{m.group(1)}_qd{m.group(2)}"] = float(m.group(3))
    return f


def launch(vmm, qlite, kdir, append, disk, trace, log_path=None):
    env = dict(os.environ)
    env.pop("G_MESSAGES_DEBUG", None)
    if trace:
        env["G_MESSAGES_DEBUG"] = "qlite-cpu"
    cmd = vmm_command(vmm, qlite, kdir, disk, append, trace)
    return Run(vmm, cmd, env, log_path=log_path)


def start_latency(vmm, qlite, kdir, append, disk):
    """A separate launch with the first-KVM_RUN probe on, stopped once it fired."""
    run = launch(vmm, qlite, kdir, append, disk, trace=True)
    deadline = time.monotonic() + 30
    while run.first_kvm_run is None and run.p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    # Right after start: what the VMM itself allocated before the guest ran much.
    mem = own_rss_mib(run.p.pid)
    run.p.kill()
    run.wait(10)
    if run.first_kvm_run is None:
        raise RuntimeError(f"{vmm}: no first KVM_RUN seen:\n" + "\n".join(run.stderr_lines[-5:]))
    return ms(run.first_kvm_run), mem


def boot_once(vmm, qlite, kdir, append, tmp, log_path):
    disk = os.path.join(tmp, f"{vmm}.img")
    with open(disk, "wb") as f:
        f.truncate(DISK_MIB << 20)
    first_run, mem_start = start_latency(vmm, qlite, kdir, append, disk)
    run = launch(vmm, qlite, kdir, append, disk, trace=False, log_path=log_path)
    status = run.wait(BOOT_TIMEOUT)
    os.unlink(disk)
    if status != PASS_STATUS:
        tail = "\n".join(run.console[-15:] + run.stderr_lines[-5:])
        raise RuntimeError(f"{vmm}: exit status {status}, expected {PASS_STATUS}:\n{tail}")
    f = run.figures()
    f["start_kvm_run"] = first_run
    f["mem_start"] = mem_start
    return f


class NetSetup:
    """What net_setup's set-up functions return (their Setup class, bench edition)."""

    def __init__(self, args=(), append="", post=None, prefix=(), cleanup=None, watch=()):
        self.args, self.append, self.post = list(args), append, post
        self.prefix, self.cleanup, self.watch = list(prefix), cleanup, list(watch)


def net_once(vmm, backend, qlite, kdir, base_append, tmp, log_path):
    """One boot moving TCP streams through backend ("slirp" or "tap"); guest-clock rates."""
    setup_fn = net_setup.setup_net_user if backend == "slirp" else net_setup.setup_net_tap
    st = setup_fn(tmp, NetSetup)
    try:
        args = st.args
        if vmm == "microvm":  # no PCI there: the virtio-mmio flavour of the same device
            args = [a.replace("virtio-net-pci", "virtio-net-device") for a in args]
        common = ["-m", str(RAM_MIB), "-display", "none", "-serial", "stdio",
                  "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                  *guest.boot_args(kdir),
                  "-append", base_append + " " + st.append]
        if vmm == "qlite":
            cmd = [qlite, "-nodefaults"] + args + common
        else:
            cmd = (["qemu-system-x86_64", "-M", VMMS[vmm]["machine"]] + qemu_common() + args +
                   common)
        run = Run(vmm, st.prefix + cmd, dict(os.environ), st.watch, log_path)
        status = run.wait(BOOT_TIMEOUT)
        failures = st.post() if status is not None else ["timed out"]
        if status != PASS_STATUS or failures:
            tail = "\n".join(run.console[-15:] + run.stderr_lines[-5:] + failures)
            raise RuntimeError(f"{vmm} {backend}: exit status {status}:\n{tail}")
    finally:
        if st.cleanup:
            st.cleanup()
    text = "\n".join(run.console)
    f = {}
    for check, direction in (("net_tx", "guest->host"), ("net_rx", "host->guest")):
        m = re.search(r"# " + check + r": \d+ KiB \w+ in \d+ ms, (\d+) KiB/s", text)
        f[f"net_{backend}_{direction}"] = int(m.group(1)) / 1024 if m else None
    return f


# ---- Migration (--migration) ----
#
# Save to a file and restore, and live migration over TCP, driven through QMP
# exactly as a management tool drives QEMU: the same commands on both VMMs,
# whatever qlite does underneath (stop-and-copy or pre-copy).

MIG_SIZES = (128, 1024)  # guest RAM, MiB
# QEMU's default max-bandwidth is 32 MiB/s, which would decide every figure:
# both VMMs get this instead (bytes/s). downtime-limit stays at the default 300 ms.
MIG_BANDWIDTH = 100 << 30
MIG_TIMEOUT = 300
HEARTBEAT_MS = 1000  # the idle guest: one console line a second after its verdict
# The busy guest: the agent's mig_workload rewrites MIG_KIB every round,
# MIG_PAUSE_MS between rounds, for more rounds than a run lasts.
MIG_KIB = 2048
MIG_PAUSE_MS = 200
MIG_FIGURES = []
for _mib in MIG_SIZES:
    MIG_FIGURES += [
        (f"save_{_mib}", f"save {_mib} MiB to a file (query-migrate total-time)", "ms", "lower"),
        (f"save_wall_{_mib}", f"save {_mib} MiB, wall (migrate -> completed)", "ms", "lower"),
        (f"file_{_mib}", f"saved file, {_mib} MiB guest", "MiB", "lower"),
        (f"restore_{_mib}", f"restore {_mib} MiB (start -> running)", "ms", "lower"),
        (f"live_idle_total_{_mib}", f"live migration, idle {_mib} MiB: total-time", "ms", "lower"),
        (f"live_idle_wall_{_mib}", f"live migration, idle {_mib} MiB: wall (migrate -> completed)",
         "ms", "lower"),
        (f"live_idle_down_{_mib}", f"live migration, idle {_mib} MiB: downtime", "ms", "lower"),
    ]
    if _mib == MIG_SIZES[0]:
        MIG_FIGURES += [
            (f"live_busy_total_{_mib}", f"live migration, busy {_mib} MiB: total-time", "ms",
             "lower"),
            (f"live_busy_wall_{_mib}", f"live migration, busy {_mib} MiB: wall (migrate -> "
             "completed)", "ms", "lower"),
            (f"live_busy_down_{_mib}", f"live migration, busy {_mib} MiB: downtime", "ms",
             "lower"),
        ]


class Monitor(qmp_test.Client):
    """A negotiated QMP client (the tests' client) that keeps events with their arrival time."""

    def __init__(self, path, proc):
        self.proc = proc
        deadline = time.monotonic() + 30
        while not os.path.exists(path):  # QEMU creates its socket only after some set-up
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no QMP socket {path} (exit status {proc.poll()})")
            time.sleep(0.005)
        super().__init__(path, connect_timeout=10)
        self.events = []
        self.negotiate()

    def cmd(self, name, args=None, timeout=60):
        evs = []
        deadline = time.monotonic() + timeout
        self.send(json.dumps({"execute": name} | ({"arguments": args} if args else {})))
        while True:
            raw = self.recv_raw(max(deadline - time.monotonic(), 0))
            if raw is None:
                raise RuntimeError(f"{name}: no reply within {timeout} s")
            obj = json.loads(raw)
            if "event" in obj:
                self.events.append((time.monotonic(), obj))
                continue
            if "error" in obj:
                raise RuntimeError(f"{name} {args or ''}: {obj['error'].get('desc')}")
            return obj["return"]

    def wait_event(self, match, timeout):
        """The first event match(obj) accepts: (arrival time, event); RuntimeError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (t, e) in enumerate(self.events):
                if match(e):
                    del self.events[i]
                    return t, e
            left = deadline - time.monotonic()
            raw = self.recv_raw(left) if left > 0 else None
            if raw is None:
                raise RuntimeError(f"no matching event within {timeout} s")
            self.events.append((time.monotonic(), json.loads(raw)))

    def wait_status(self, want, timeout, poll=0.01):
        """Polls query-status until the run state is want; the monotonic time it was seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with status {self.proc.returncode}")
            st = self.cmd("query-status", timeout=max(deadline - time.monotonic(), 1))["status"]
            now = time.monotonic()
            if st == want:
                return now
            if st in ("internal-error", "shutdown", "guest-panicked"):
                raise RuntimeError(f"run state {st}")
            time.sleep(poll)
        raise RuntimeError(f"not {want} within {timeout} s")


class MigVM:
    """One VMM process for the migration figures: console in a file, QMP on a unix socket."""

    def __init__(self, vmm, qlite, kdir, tmp, name, ram_mib, append, incoming=None):
        self.name = name
        self.console = os.path.join(tmp, name + ".console")
        self.stderr = os.path.join(tmp, name + ".stderr")
        sock = os.path.join(tmp, name + ".qmp")
        extra = ["-qmp", f"unix:{sock},server=on,wait=off"]
        if incoming:
            extra += ["-incoming", incoming]
        cmd = vmm_command(vmm, qlite, kdir, None, append,
                          ram_mib=ram_mib, serial=f"file:{self.console}", exit_device=False,
                          extra=extra)
        env = dict(os.environ)
        env.pop("G_MESSAGES_DEBUG", None)
        self.t0 = time.monotonic()
        with open(self.stderr, "wb") as err:
            self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=err, env=env)
        try:
            self.mon = Monitor(sock, self.p)
        except (RuntimeError, OSError) as e:
            self.close()
            raise RuntimeError(f"{name}: {e}: {self.tail()}")

    def text(self):
        try:
            with open(self.console, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def tail(self):
        try:
            with open(self.stderr, "rb") as f:
                return f.read().decode("utf-8", "replace").strip()[-300:]
        except FileNotFoundError:
            return ""

    def wait_console(self, pattern, timeout, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.findall(pattern, self.text())
            if len(found) >= count:
                return found
            if "qlite-agent: FAIL" in self.text():
                raise RuntimeError(f"{self.name}: the guest agent failed")
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name}: exited ({self.p.returncode}) before "
                                   f"'{pattern}': {self.tail()}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no '{pattern}' within {timeout} s")

    def set_params(self):
        self.mon.cmd("migrate-set-capabilities",
                     {"capabilities": [{"capability": "events", "state": True}]})
        self.mon.cmd("migrate-set-parameters", {"max-bandwidth": MIG_BANDWIDTH})

    def migrate(self, uri):
        """migrate; (query-migrate once completed, wall seconds from migrate to completed)."""
        self.set_params()
        self.mon.events.clear()  # only what this migration says counts
        start = time.monotonic()
        self.mon.cmd("migrate", {"uri": uri})
        t, ev = self.mon.wait_event(
            lambda e: e["event"] == "MIGRATION" and
            e["data"]["status"] in ("completed", "failed", "cancelled"), MIG_TIMEOUT)
        info = self.mon.cmd("query-migrate")
        if ev["data"]["status"] != "completed" or info.get("status") != "completed":
            raise RuntimeError(f"{self.name}: migrate {uri}: {ev['data']['status']} "
                               f"({info.get('error-desc', '')}) {self.tail()}")
        return info, t - start

    def close(self, log_path=None):
        if self.p.poll() is None:
            try:
                self.mon.send('{"execute": "quit"}')
                self.p.wait(15)
            except Exception:  # noqa: BLE001  a VMM that does not quit is killed
                pass
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if getattr(self, "mon", None):
            self.mon.close()
        if log_path and os.path.exists(self.console):
            shutil.copyfile(self.console, log_path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def live(src, vmm, qlite, kdir, tmp, name, ram_mib, append, logs):
    """Migrates src to a new process over TCP; (total-time, downtime, wall ms, destination)."""
    port = free_port()
    dst = MigVM(vmm, qlite, kdir, tmp, name, ram_mib, append, incoming=f"tcp:127.0.0.1:{port}")
    try:
        st = dst.mon.cmd("query-status")["status"]
        if st != "inmigrate":
            raise RuntimeError(f"{name}: run state {st} before the migration, not inmigrate")
        dst.set_params()
        info, wall = src.migrate(f"tcp:127.0.0.1:{port}")
        dst.mon.wait_status("running", MIG_TIMEOUT)
    except RuntimeError:
        dst.close(os.path.join(logs, name + ".console"))
        raise
    # QEMU 7.2 on a VM that was itself restored from a stream often reports total-time
    # and downtime 0 for a migration that did take place: no figure rather than a false
    # one (the wall time still counts).
    if not info.get("total-time"):
        log(f"  {src.name}: query-migrate says total-time 0, downtime {info.get('downtime')}: "
            "left out")
        return None, None, ms(wall), dst
    return info["total-time"], info.get("downtime"), ms(wall), dst


def mig_idle_chain(vmm, qlite, kdir, tmp, ram_mib, append, logs, f):
    """Boot, save to a file, restore from it, then migrate the restored VM live."""
    state = os.path.join(tmp, f"{vmm}-{ram_mib}.state")
    tag = f"{vmm}-mig-{ram_mib}"
    src = MigVM(vmm, qlite, kdir, tmp, tag + "-boot", ram_mib, append)
    try:
        src.wait_console(r"qlite-agent: (?:PASS|FAIL)", BOOT_TIMEOUT)
        src.wait_console(r"heartbeat 1 ", 60)
        info, wall = src.migrate(f"exec:cat > {state}")
        f[f"save_{ram_mib}"] = info["total-time"]
        f[f"save_wall_{ram_mib}"] = ms(wall)
        f[f"file_{ram_mib}"] = os.path.getsize(state) / (1 << 20)
    finally:
        src.close(os.path.join(logs, tag + "-boot.console"))
    rst = MigVM(vmm, qlite, kdir, tmp, tag + "-restored", ram_mib, append,
                incoming=f"exec:cat {state}")
    dst = None
    try:
        f[f"restore_{ram_mib}"] = ms(rst.mon.wait_status("running", MIG_TIMEOUT) - rst.t0)
        os.unlink(state)
        beats = len(rst.wait_console(r"heartbeat \d+ ", 60))
        rst.wait_console(r"heartbeat \d+ ", 60, count=beats + 1)  # it runs on, idle
        total, down, wall, dst = live(rst, vmm, qlite, kdir, tmp, tag + "-live", ram_mib, append,
                                      logs)
        f[f"live_idle_total_{ram_mib}"], f[f"live_idle_down_{ram_mib}"] = total, down
        f[f"live_idle_wall_{ram_mib}"] = wall
        dst.wait_console(r"heartbeat \d+ ", 60, count=beats + 2)  # the guest goes on there
    finally:
        rst.close(os.path.join(logs, tag + "-restored.console"))
        if dst:
            dst.close(os.path.join(logs, tag + "-live.console"))


def mig_busy(vmm, qlite, kdir, tmp, ram_mib, append, logs, f):
    """Live migration while the guest rewrites MIG_KIB every round."""
    tag = f"{vmm}-mig-busy-{ram_mib}"
    src = MigVM(vmm, qlite, kdir, tmp, tag + "-boot", ram_mib, append)
    dst = None
    try:
        src.wait_console(r"mig round 3 ", BOOT_TIMEOUT)
        total, down, wall, dst = live(src, vmm, qlite, kdir, tmp, tag + "-live", ram_mib, append,
                                      logs)
        f[f"live_busy_total_{ram_mib}"], f[f"live_busy_down_{ram_mib}"] = total, down
        f[f"live_busy_wall_{ram_mib}"] = wall
        last = int(re.findall(r"mig round (\d+) ", src.text())[-1])
        dst.wait_console(rf"mig round {last + 2} ", 120)  # the rounds go on there
        if re.search(r"not ok \d+ - mig_workload", dst.text()):
            raise RuntimeError(f"{tag}: the workload saw its memory change")
    finally:
        src.close(os.path.join(logs, tag + "-boot.console"))
        if dst:
            dst.close(os.path.join(logs, tag + "-live.console"))


def migration_runs(vmms, runs, qlite, kdir, base_append, out):
    """samples[vmm] = [figures per run], notes = reasons for what could not be measured."""
    idle = base_append + f" qlite_agent.checks=cpus qlite_agent.heartbeat_ms={HEARTBEAT_MS}"
    busy = (base_append + " qlite_agent.checks=mig_workload qlite_agent.mig_rounds=100000"
            f" qlite_agent.mig_kib={MIG_KIB} qlite_agent.mig_ms={MIG_PAUSE_MS}")
    scenarios = [(f"save/restore/live idle {m} MiB", mig_idle_chain, m, idle) for m in MIG_SIZES]
    scenarios.insert(1, (f"live busy {MIG_SIZES[0]} MiB", mig_busy, MIG_SIZES[0], busy))
    samples = {v: [{} for _ in range(runs)] for v in vmms}
    notes = []
    logs = os.path.join(out, "logs")
    with tempfile.TemporaryDirectory(prefix="qlite-bench-mig-") as tmp:
        for i in range(runs):
            order = vmms[i % len(vmms):] + vmms[:i % len(vmms)]
            for what, fn, ram_mib, append in scenarios:
                for v in order:
                    log(f"run {i + 1}/{runs}: {VMMS[v]['label']}: {what}")
                    start = time.monotonic()
                    try:
                        fn(v, qlite, kdir, tmp, ram_mib, append, logs, samples[v][i])
                    except (RuntimeError, OSError, KeyError, ValueError) as e:
                        log(f"  failed: {e}")
                        notes.append(f"{VMMS[v]['label']}, {what}, run {i + 1}: {e}")
                    log(f"  {time.monotonic() - start:.0f} s: " + ", ".join(
                        f"{k}={fmt(x)}" for k, x in samples[v][i].items()
                        if k.endswith(f"_{ram_mib}") and x is not None))
    return samples, notes


def summarize(samples, vmms, figures=FIGURES):
    """Per figure and VMM: median, min, max over the runs; None when never measured."""
    table = {}
    for key, *_ in figures:
        row = {}
        for v in vmms:
            vals = [s[key] for s in samples[v] if s.get(key) is not None]
            row[v] = (statistics.median(vals), min(vals), max(vals)) if vals else None
        table[key] = row
    return table


def fmt(x):
    if x is None:
        return "n/a"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


def ratio(table, key, a, b):
    ra, rb = table[key].get(a), table[key].get(b)
    if not ra or not rb or rb[0] == 0:
        return None
    return ra[0] / rb[0]


def markdown(table, vmms, runs, figures=FIGURES):
    qemus = [v for v in vmms if v != "qlite"]
    head = ["figure", "unit"] + [VMMS[v]["label"] + " median (min-max)" for v in vmms]
    head += [f"qlite/{VMMS[q]['label']}" for q in qemus if "qlite" in vmms]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, unit, better in figures:
        cells = [label, f"{unit} ({better} is better)"]
        for v in vmms:
            r = table[key][v]
            cells.append("n/a" if r is None else f"{fmt(r[0])} ({fmt(r[1])}-{fmt(r[2])})")
        if "qlite" in vmms:
            for q in qemus:
                rr = ratio(table, key, "qlite", q)
                cells.append("n/a" if rr is None else f"{rr:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\n{runs} run(s) per VMM, alternating; medians; ratios of medians.")
    return "\n".join(lines)


def write_csv(path, table, vmms, figures=FIGURES):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["figure", "unit", "better", "vmm", "median", "min", "max"])
        for key, label, unit, better in figures:
            for v in vmms:
                r = table[key][v]
                w.writerow([key, unit, better, v] + (["n/a"] * 3 if r is None else list(r)))


def write_chart(path, table, vmms, figures=FIGURES):
    """Bars of qlite/QEMU per figure (1 = equal); figures where lower is better are inverted
    so that a bar above 1 always means qlite is better."""
    if not shutil.which("gnuplot") or "qlite" not in vmms:
        return False
    qemus = [v for v in vmms if v != "qlite"]
    rows = []
    for key, label, unit, better in figures:
        vals = []
        for q in qemus:
            rr = ratio(table, key, "qlite", q)
            vals.append("NaN" if not rr else f"{(1 / rr if better == 'lower' else rr):.4f}")
        if any(v != "NaN" for v in vals):
            rows.append((label, vals))
    if not rows:
        return False
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as dat:
        for label, vals in rows:
            dat.write('"' + label.replace('"', "'") + '" ' + " ".join(vals) + "\n")
    plots = ", ".join(f"'{dat.name}' using {i + 2}:xtic(1) title 'vs {VMMS[q]['label']}'"
                      for i, q in enumerate(qemus))
    script = f"""
set terminal pngcairo size 1400,700 noenhanced
set output '{path}'
set title 'qlite advantage over QEMU 7.2 (1 = equal, >1 = qlite better; higher-is-better figures as is, lower-is-better inverted)'
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.9
set bmargin 11
set rmargin 10
set xtics rotate by -40 font ',9'
set grid ytics
set logscale y 2
set ylabel 'ratio (log scale)'
plot {plots}, 1 with lines lc rgb 'black' notitle
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    os.unlink(dat.name)
    if r.returncode != 0:
        log("gnuplot: " + r.stderr.strip())
        return False
    return True


# Plausible bounds per unit, for --check: a figure outside them means a broken parser or run.
SANE = {"ms": (0.01, 60000), "s": (0.1, BOOT_TIMEOUT), "MiB": (0.5, 4096),
        "ns/exit": (10, 1e9), "IOPS": (1, 1e7), "req/s": (10, 1e8)}


# Migration: a downtime may round to 0 ms; a 1 GiB save may take minutes.
MIG_SANE = {"ms": (0, MIG_TIMEOUT * 1000), "MiB": (0.01, 4096)}


def expected(key, vmm, net):
    """Whether vmm gives figure key: network figures only with --net, the device model is ours."""
    if key.startswith("net_"):
        return net
    return vmm == "qlite" or not key.startswith("model_")


def check(table, md, vmms, chart, net, figures=FIGURES, sane=SANE):
    problems = []
    for key, label, unit, _ in figures:
        if label not in md:
            problems.append(f"row '{label}' missing from the table")
        lo, hi = sane.get(unit, (None, None))
        for v in vmms:
            r = table[key][v]
            if not expected(key, v, net):
                if r is not None:
                    problems.append(f"{key} for {v}: a value where none can exist")
                continue
            if r is None:
                problems.append(f"{key} for {v}: not measured")
            elif lo is not None and not lo <= r[0] <= hi:
                problems.append(f"{key} for {v}: {r[0]} {unit} outside [{lo}, {hi}]")
    if len(vmms) > 1 and "qlite" in vmms and not chart:
        problems.append("no chart written")
    return problems


def migration_main(a, vmms, qlite, kdir, base_append):
    samples, notes = migration_runs(vmms, a.runs, qlite, kdir, base_append, a.out)
    table = summarize(samples, vmms, MIG_FIGURES)
    md = markdown(table, vmms, a.runs, MIG_FIGURES)
    print(md)
    for n in notes:
        print(f"- not measured: {n}")
    csv_path = os.path.join(a.out, "latest-migration.csv")
    write_csv(csv_path, table, vmms, MIG_FIGURES)
    chart = write_chart(os.path.join(a.out, "latest-migration.png"), table, vmms, MIG_FIGURES)
    log(f"wrote {csv_path}" + (" and latest-migration.png" if chart else ""))
    if a.check:
        problems = check(table, md, vmms, chart, False, MIG_FIGURES, MIG_SANE)
        for p in problems:
            print(f"CHECK FAILED: {p}")
        return 1 if problems else 0
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2, help="boots per VMM (default 2)")
    ap.add_argument("--vmms", default="qlite,q35,microvm",
                    help="comma-separated subset of qlite,q35,microvm")
    ap.add_argument("--qlite", help="use this qlite binary instead of a release build")
    ap.add_argument("--no-setup", action="store_true",
                    help="install nothing (QEMU, gnuplot and the kernel must be there)")
    ap.add_argument("--out", default=RESULTS, help="where latest.csv and latest.png go")
    ap.add_argument("--net", action="store_true",
                    help="also measure TCP through slirp and tap (one more boot per VMM and "
                         "backend, a few minutes each here)")
    ap.add_argument("--migration", action="store_true",
                    help="instead of the boot figures, measure save/restore through a file and "
                         "live migration over TCP (guests of " +
                         " and ".join(f"{m} MiB" for m in MIG_SIZES) + ")")
    ap.add_argument("--disk-boot", action="store_true",
                    help="instead of the boot figures, boot a disk image through the firmware "
                         "(SeaBIOS, syslinux), raw and as a qcow2 overlay, and measure 4 KiB "
                         "I/O on a data disk of each format (bench/disk_boot.py)")
    ap.add_argument("--check", action="store_true",
                    help="smoke test: fail unless every figure a VMM can give has a sane value")
    a = ap.parse_args()
    vmms = [v for v in a.vmms.split(",") if v]
    if not vmms or any(v not in VMMS for v in vmms) or a.runs < 1:
        ap.error("--vmms takes qlite, q35, microvm; --runs at least 1")

    if not a.no_setup:
        ensure_packages()
    bdir = build_release() if not a.qlite else None
    qlite = a.qlite or os.path.join(bdir, "qlite")
    if subprocess.run([KVM_HOST, "--check"]).returncode != 0:
        if os.environ.get("QLITE_IN_NESTED_HOST"):
            print("FAIL: no usable /dev/kvm, even in the nested KVM host")
            return 1
        # Everything is built here; the comparisons run where /dev/kvm works.
        guest_dir()
        log("no usable /dev/kvm here: running inside a nested KVM host (figures are "
            "nested-host figures: compare ratios only)")
        args, argv = [], sys.argv[1:]
        while argv:
            arg = argv.pop(0)
            if arg == "--qlite":
                argv.pop(0)
            elif arg != "--no-setup":
                args.append(arg)
        args += ["--no-setup", "--qlite", os.path.abspath(qlite)]
        env = dict(os.environ, QLITE_IN_NESTED_HOST="1")
        return subprocess.run([KVM_HOST, "--retry", "--", sys.executable, os.path.abspath(__file__)]
                              + args, env=env).returncode
    kdir = guest_dir()
    base_append = guest.append()
    append = base_append + " qlite_agent.checks=exits,blk_bench qlite_agent.bench_disk=vda"
    samples = {v: [] for v in vmms}
    net_setup.report = log
    os.makedirs(os.path.join(a.out, "logs"), exist_ok=True)
    if a.migration:
        return migration_main(a, vmms, qlite, kdir, base_append)
    if a.disk_boot:
        import disk_boot  # noqa: E402  beside this file
        return disk_boot.main(a, vmms, qlite, base_append)
    with tempfile.TemporaryDirectory(prefix="qlite-bench-") as tmp:
        for i in range(a.runs):
            # Rotate the order every run: no VMM always runs first or last.
            order = vmms[i % len(vmms):] + vmms[:i % len(vmms)]
            for v in order:
                log(f"run {i + 1}/{a.runs}: {VMMS[v]['label']}")
                log_path = os.path.join(a.out, "logs", f"{v}-{i + 1}.console")
                samples[v].append(boot_once(v, qlite, kdir, append, tmp, log_path))
        for backend in ("slirp", "tap") if a.net else ():
            for v in vmms:
                log(f"network via {backend}: {VMMS[v]['label']}")
                log_path = os.path.join(a.out, "logs", f"{v}-net-{backend}.console")
                samples[v][0].update(net_once(v, backend, qlite, kdir, base_append, tmp,
                                              log_path))
    if "qlite" in vmms:
        model_bin = bdir or os.path.dirname(os.path.abspath(qlite))
        if os.path.exists(os.path.join(model_bin, "bench", "blk-model")):
            samples["qlite"][0].update(device_model(model_bin))
    table = summarize(samples, vmms)
    md = markdown(table, vmms, a.runs)
    print(md)
    write_csv(os.path.join(a.out, "latest.csv"), table, vmms)
    chart = write_chart(os.path.join(a.out, "latest.png"), table, vmms)
    log(f"wrote {os.path.join(a.out, 'latest.csv')}" + (" and latest.png" if chart else ""))
    if a.check:
        problems = check(table, md, vmms, chart, a.net)
        for p in problems:
            print(f"CHECK FAILED: {p}")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
