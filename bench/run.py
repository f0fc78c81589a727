#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""qlite beside QEMU 7.2 on the same guest: one command, one table.

Boots the test kernel (tests/guest) under qlite and under QEMU (-M q35 and
-M microvm), N runs each, alternating the order every run so machine noise
hits every VMM alike, and reports per figure the median, the spread (min-max)
and the ratio qlite/QEMU. Each boot yields every guest figure at once: the
selftest times VM exits and 4 KiB disk I/O in the guest kernel and reports
its verdict through isa-debug-exit. Host-side figures (the device model alone)
come from build-release/bench/blk-model. With --net, one more boot per VMM
and backend (slirp user networking, a tap in a network namespace of its own)
moves TCP streams both ways between the guest and peers on the host
(tests/boot/net_setup.py) and reports their rates.

Output: a Markdown table on stdout, bench/results/latest.csv and a chart of
the ratios, bench/results/latest.png (gnuplot). docs/performance.md says what
each figure means and how to read it on a host that emulates guest ring 0.
"""
import argparse
import csv
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "boot"))
import net_setup  # noqa: E402  host-side TCP peers of the selftest's net checks

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RESULTS = os.path.join(ROOT, "bench", "results")
GUEST_DIR = os.path.join(ROOT, "tests", "guest")
RAM_MIB = 256
DISK_MIB = 8
BOOT_TIMEOUT = 600
PASS_STATUS = 33
APT_PACKAGES = ["qemu-system-x86", "gnuplot-nox"]

# The VMMs: qlite, and QEMU with the machine types that have our devices.
# Guest RAM is a memfd for both, so "VMM memory" (RssAnon + RssFile) leaves it out.
QEMU_COMMON = ["-cpu", "host,-arch-capabilities", "-accel", "kvm", "-nodefaults",
               "-no-user-config", "-object", f"memory-backend-memfd,id=ram,size={RAM_MIB}M"]
# Start-latency runs only: every vCPU ioctl traced would slow a whole boot down.
QEMU_TRACE = ["-trace", "kvm_vcpu_ioctl", "-msg", "timestamp=on"]
VMMS = {
    "qlite": dict(label="qlite"),
    "q35": dict(label="QEMU q35", machine="q35,memory-backend=ram"),
    "microvm": dict(label="QEMU microvm", machine="microvm,acpi=off,rtc=on,memory-backend=ram"),
}
KVM_RUN_IOCTL = "0xae80"

# Every figure the table reports: (key, label, unit, better). A figure no VMM
# can produce yet is still listed, as n/a.
FIGURES = [
    ("start_kvm_run", "start -> first KVM_RUN", "ms", "lower"),
    ("start_console", "start -> first console byte", "ms", "lower"),
    ("boot", "start -> selftest verdict", "s", "lower"),
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


def kernel_dir():
    out = subprocess.run([os.path.join(GUEST_DIR, "build-kernel.sh"), "--path"],
                         capture_output=True, text=True)
    if out.returncode == 0:
        return out.stdout.strip().splitlines()[-1]
    log("building the test kernel (minutes)")
    sh([os.path.join(GUEST_DIR, "build-kernel.sh")], stdout=subprocess.DEVNULL)
    return kernel_dir()


def host_params():
    return subprocess.run([os.path.join(GUEST_DIR, "host-params.sh")], capture_output=True,
                          text=True, check=True).stdout.strip()


def vmm_command(vmm, qlite, kernel, disk, append, trace=False):
    common = ["-m", str(RAM_MIB), "-display", "none", "-serial", "stdio",
              "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
              "-kernel", kernel, "-append", append]
    if vmm == "qlite":
        # -nodefaults as for QEMU: no default NIC.
        return [qlite, "-nodefaults", "-drive", f"file={disk},format=raw,if=virtio"] + common
    if vmm == "microvm":
        drive = ["-drive", f"file={disk},format=raw,if=none,id=d0",
                 "-device", "virtio-blk-device,drive=d0"]
    else:
        drive = ["-drive", f"file={disk},format=raw,if=virtio"]
    return (["qemu-system-x86_64", "-M", VMMS[vmm]["machine"]] + QEMU_COMMON +
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

    def __init__(self, vmm, cmd, env):
        self.vmm = vmm
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
                if "qlite-selftest: PASS" in text or "qlite-selftest: FAIL" in text:
                    self.verdict = now - self.t0
        if buf:
            self.console.append(buf.decode(errors="replace"))

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


def launch(vmm, qlite, kdir, append, disk, trace):
    env = dict(os.environ)
    env.pop("G_MESSAGES_DEBUG", None)
    if trace:
        env["G_MESSAGES_DEBUG"] = "qlite-cpu"
    cmd = vmm_command(vmm, qlite, os.path.join(kdir, "vmlinux"), disk, append, trace)
    return Run(vmm, cmd, env)


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
    run = launch(vmm, qlite, kdir, append, disk, trace=False)
    status = run.wait(BOOT_TIMEOUT)
    os.unlink(disk)
    with open(log_path, "w") as f:
        f.write("\n".join(run.console) + "\n")
    if status != PASS_STATUS:
        tail = "\n".join(run.console[-15:] + run.stderr_lines[-5:])
        raise RuntimeError(f"{vmm}: exit status {status}, expected {PASS_STATUS}:\n{tail}")
    f = run.figures()
    f["start_kvm_run"] = first_run
    f["mem_start"] = mem_start
    return f


class NetSetup:
    """What net_setup's set-up functions return (their Setup class, bench edition)."""

    def __init__(self, args=(), append="", post=None, prefix=(), cleanup=None):
        self.args, self.append, self.post = list(args), append, post
        self.prefix, self.cleanup = list(prefix), cleanup


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
                  "-kernel", os.path.join(kdir, "vmlinux"),
                  "-append", base_append + " " + st.append]
        if vmm == "qlite":
            cmd = [qlite, "-nodefaults"] + args + common
        else:
            cmd = (["qemu-system-x86_64", "-M", VMMS[vmm]["machine"]] + QEMU_COMMON + args +
                   common)
        run = Run(vmm, st.prefix + cmd, dict(os.environ))
        status = run.wait(BOOT_TIMEOUT)
        with open(log_path, "w") as f:
            f.write("\n".join(run.console) + "\n")
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


def summarize(samples, vmms):
    """Per figure and VMM: median, min, max over the runs; None when never measured."""
    table = {}
    for key, *_ in FIGURES:
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


def markdown(table, vmms, runs):
    qemus = [v for v in vmms if v != "qlite"]
    head = ["figure", "unit"] + [VMMS[v]["label"] + " median (min-max)" for v in vmms]
    head += [f"qlite/{VMMS[q]['label']}" for q in qemus if "qlite" in vmms]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, unit, better in FIGURES:
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


def write_csv(path, table, vmms):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["figure", "unit", "better", "vmm", "median", "min", "max"])
        for key, label, unit, better in FIGURES:
            for v in vmms:
                r = table[key][v]
                w.writerow([key, unit, better, v] + (["n/a"] * 3 if r is None else list(r)))


def write_chart(path, table, vmms):
    """Bars of qlite/QEMU per figure (1 = equal); figures where lower is better are inverted
    so that a bar above 1 always means qlite is better."""
    if not shutil.which("gnuplot") or "qlite" not in vmms:
        return False
    qemus = [v for v in vmms if v != "qlite"]
    rows = []
    for key, label, unit, better in FIGURES:
        vals = []
        for q in qemus:
            rr = ratio(table, key, "qlite", q)
            vals.append("NaN" if rr is None else f"{(1 / rr if better == 'lower' else rr):.4f}")
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


def expected(key, vmm, net):
    """Whether vmm gives figure key: network figures only with --net, the device model is ours."""
    if key.startswith("net_"):
        return net
    return vmm == "qlite" or not key.startswith("model_")


def check(table, md, vmms, chart, net):
    problems = []
    for key, label, unit, _ in FIGURES:
        if label not in md:
            problems.append(f"row '{label}' missing from the table")
        lo, hi = SANE.get(unit, (None, None))
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
    ap.add_argument("--check", action="store_true",
                    help="smoke test: fail unless every figure a VMM can give has a sane value")
    a = ap.parse_args()
    vmms = [v for v in a.vmms.split(",") if v]
    if not os.path.exists("/dev/kvm"):
        print("SKIP: /dev/kvm is missing")
        return 77
    if not vmms or any(v not in VMMS for v in vmms) or a.runs < 1:
        ap.error("--vmms takes qlite, q35, microvm; --runs at least 1")

    if not a.no_setup:
        ensure_packages()
    bdir = build_release() if not a.qlite else None
    qlite = a.qlite or os.path.join(bdir, "qlite")
    kdir = kernel_dir()
    base_append = " ".join(p for p in ["console=ttyS0", host_params(), "qlite_selftest.run=1"]
                           if p)
    append = base_append + " qlite_selftest.checks=exits,blk_bench qlite_selftest.bench_disk=vda"
    samples = {v: [] for v in vmms}
    net_setup.report = log
    os.makedirs(os.path.join(a.out, "logs"), exist_ok=True)
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
