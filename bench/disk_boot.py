# SPDX-License-Identifier: GPL-2.0-or-later
"""bench/run.py --disk-boot: a disk image booted by its firmware, raw and qcow2.

The test guest on a bootable disk (tests/guest/build-disk.sh: syslinux on
FAT, no -kernel), booted through SeaBIOS under qlite and QEMU q35, from the
raw image and from a qcow2 overlay on a qcow2 copy of it. Each boot also
carries a 64 MiB data disk of the same format (qcow2: an overlay on a fully
allocated base, as a VM made from a template) on which the agent measures
4 KiB I/O. Figures: start -> the agent's first line, and the disk rates.
"""
import os
import re
import subprocess
import tempfile
import time

import run as bench

FORMATS = ("raw", "qcow2")
DATA_MIB = 64
FIRST_LINE = "TAP version 13"

FIGURES = []
for _fmt in FORMATS:
    FIGURES.append((f"fw_boot_{_fmt}", f"firmware boot ({_fmt}) -> agent's first line", "s",
                    "lower"))
for _fmt in FORMATS:
    for _op in ("rand-read", "rand-write"):
        for _qd in ("qd1", "qd16"):
            FIGURES.append((f"disk_{_op}_{_qd}_{_fmt}", f"{_fmt} disk {_op} 4k {_qd}", "IOPS",
                            "higher"))
    for _op in ("seq-read", "seq-write"):
        FIGURES.append((f"disk_{_op}_mib_{_fmt}", f"{_fmt} disk {_op} 4k qd16", "MiB/s",
                        "higher"))

SANE = {"s": (0.1, bench.BOOT_TIMEOUT), "IOPS": (1, 1e7), "MiB/s": (0.01, 1e5)}


def qemu_img(*args):
    subprocess.run(["qemu-img"] + list(args), check=True, capture_output=True)


def make_disks(tmp, fmt, append):
    """The boot disk and the data disk of one format; returns their paths."""
    raw = os.path.join(tmp, "boot.img")
    if not os.path.exists(raw):
        subprocess.run([os.path.join(bench.GUEST_DIR, "build-disk.sh"), raw, bench.guest_dir(),
                        append], check=True, capture_output=True)
    data_raw = os.path.join(tmp, "data.img")
    if fmt == "raw":
        with open(data_raw, "wb") as f:
            f.write(bytes(DATA_MIB << 20))  # written: every read hits the file
        return raw, data_raw
    base, top = os.path.join(tmp, "base.qcow2"), os.path.join(tmp, "top.qcow2")
    qemu_img("convert", "-f", "raw", "-O", "qcow2", raw, base)
    qemu_img("create", "-f", "qcow2", "-b", base, "-F", "qcow2", top)
    dbase, dtop = os.path.join(tmp, "data-base.qcow2"), os.path.join(tmp, "data-top.qcow2")
    qemu_img("create", "-f", "qcow2", "-o", "preallocation=full", dbase, f"{DATA_MIB}M")
    qemu_img("create", "-f", "qcow2", "-b", dbase, "-F", "qcow2", dtop)
    return top, dtop


def command(vmm, qlite, boot, data, fmt):
    drives = ["-drive", f"file={boot},format={fmt},if=virtio",
              "-drive", f"file={data},format={fmt},if=virtio"]
    common = ["-m", str(bench.RAM_MIB), "-display", "none", "-serial", "stdio",
              "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"] + drives
    if vmm == "qlite":
        return [qlite, "-nodefaults"] + common
    # graphics=off: SeaBIOS's console on COM1, as qlite tells it (no display).
    return (["qemu-system-x86_64", "-M", bench.VMMS[vmm]["machine"] + ",graphics=off"] +
            bench.qemu_common() + common)


def boot_once(vmm, qlite, tmp, fmt, append, log_path):
    work = tempfile.mkdtemp(dir=tmp)
    boot, data = make_disks(work, fmt, append)
    env = dict(os.environ)
    env.pop("G_MESSAGES_DEBUG", None)
    r = bench.Run(vmm, command(vmm, qlite, boot, data, fmt), env, log_path=log_path,
                  mark=FIRST_LINE)
    status = r.wait(bench.BOOT_TIMEOUT)
    subprocess.run(["rm", "-rf", work])
    if status != bench.PASS_STATUS:
        tail = "\n".join(r.console[-15:] + r.stderr_lines[-5:])
        raise RuntimeError(f"{vmm} ({fmt}): exit status {status}, expected "
                           f"{bench.PASS_STATUS}:\n{tail}")
    f = {f"fw_boot_{fmt}": r.first_match}
    for k, v in r.figures().items():
        m = re.match(r"disk_(rand-\w+)_(qd\d+)$", k)
        if m and v is not None:
            f[f"disk_{m.group(1)}_{m.group(2)}_{fmt}"] = v
        m = re.match(r"disk_(seq-\w+)_qd16$", k)
        if m and v is not None:
            f[f"disk_{m.group(1)}_mib_{fmt}"] = v * 4096 / (1 << 20)
    return f


def main(a, vmms, qlite, base_append):
    vmms = [v for v in vmms if v != "microvm"]  # no PCI, so no PC firmware boot there
    append = base_append + " qlite_agent.checks=blk_bench qlite_agent.bench_disk=vdb"
    samples = {v: [{} for _ in range(a.runs)] for v in vmms}
    with tempfile.TemporaryDirectory(prefix="qlite-bench-disk-") as tmp:
        for i in range(a.runs):
            order = vmms[i % len(vmms):] + vmms[:i % len(vmms)]
            for fmt in FORMATS:
                for v in order:
                    bench.log(f"run {i + 1}/{a.runs}: {bench.VMMS[v]['label']}: firmware boot, "
                              f"{fmt}")
                    start = time.monotonic()
                    log_path = os.path.join(a.out, "logs", f"{v}-disk-{fmt}-{i + 1}.console")
                    samples[v][i].update(boot_once(v, qlite, tmp, fmt, append, log_path))
                    bench.log(f"  {time.monotonic() - start:.0f} s")
    table = bench.summarize(samples, vmms, FIGURES)
    md = bench.markdown(table, vmms, a.runs, FIGURES)
    print(md)
    csv_path = os.path.join(a.out, "latest-disk-boot.csv")
    bench.write_csv(csv_path, table, vmms, FIGURES)
    chart = bench.write_chart(os.path.join(a.out, "latest-disk-boot.png"), table, vmms, FIGURES)
    bench.log(f"wrote {csv_path}" + (" and latest-disk-boot.png" if chart else ""))
    if a.check:
        problems = bench.check(table, md, vmms, chart, False, FIGURES, SANE)
        for p in problems:
            print(f"CHECK FAILED: {p}")
        return 1 if problems else 0
    return 0
