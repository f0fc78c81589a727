#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Save and restore of a booted Linux test guest, through QMP as QEMU has it.

The guest agent runs mig_workload (memory rewritten and checked
every round, a round counter on the console) and then its blk check. The
source is saved with `migrate` to a file (file: with a raw disk, exec: with
a qcow2 one, which qemu-img then checks), ends in
postmigrate and quits; a new qlite started with `-incoming` carries on:
the rounds continue after the last one printed before the save, the memory
check and the clock hold, the disk works, the agent passes (exit 33).
The same for a VM booted by its firmware from a disk. Then the refusals: a
truncated stream, a corrupted byte, a VM with other
RAM, a section this VM does not have and a section larger than a VM's state
can be are refused with their reason and exit status 1, and the guest never
runs.

Usage: migration_test.py --vmm QLITE [--log-dir DIR]   (exit 0, 1, 77 skip)
"""
import os
import re
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "boot"))
sys.path.insert(0, HERE)
import boot_test  # noqa: E402
import guest  # noqa: E402
import linux_lifecycle_test as lc  # noqa: E402  Console, Monitor, check
import qmp_test  # noqa: E402

ROUNDS = 150  # 200 ms each: the source still runs when its save is done
RESTORE_TIMEOUT = 300  # the rest of the workload, emulated where KVM is nested
SAVE_AT = 5
PASS_STATUS = 33
SILENT_BOOT = 150  # s: a boot prints within a minute, even in a nested host under ASan
RETRY = "retry"


def save_retrying(a, tmp, disk, seed, uri, tag, firmware=False, fresh=None):
    """save(), started once more (fresh() resets the disk) if the guest never printed."""
    last = save(a, tmp, disk, seed, uri, tag, firmware)
    if last == RETRY:
        if fresh:
            fresh()
        last = save(a, tmp, disk, seed, uri, tag, firmware, first_try=False)
    return last


def agent_append(seed, dev):
    """The guest's command line: the workload and the disk check on dev."""
    return guest.append(
        "qlite_agent.checks=mig_workload,blk", f"qlite_agent.mig_rounds={ROUNDS}",
        f"qlite_agent.mig_disk={dev}", f"qlite_agent.blk_disk={dev}",
        f"qlite_agent.blk_seed={seed}")


def disk_format(path):
    return "qcow2" if path.endswith(".qcow2") else "raw"


def vmm_args(a, tmp, name, disk, seed, extra, firmware=False):
    """qlite booting the guest directly with a data disk, or (firmware) from
    that disk, whose boot loader has the command line (build_disk)."""
    console = os.path.join(tmp, name + ".console")
    boot = [] if firmware else guest.boot_args(a.gdir) + ["-append", agent_append(seed, "vda")]
    return [a.vmm] + boot + ["-m", "256", "-nodefaults",
            "-display", "none", "-serial", f"file:{console}",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-drive", f"file={disk},format={disk_format(disk)},if=virtio"] + extra, console


def save(a, tmp, disk, seed, uri, tag, firmware=False, first_try=True):
    """Boots the source, saves it at round SAVE_AT and quits it; returns the
    last round it printed, or RETRY for a boot that never printed anything."""
    sock = os.path.join(tmp, "src.sock")
    args, console = vmm_args(a, tmp, "source-" + tag, disk, seed,
                             ["-qmp", f"unix:{sock},server=on,wait=off"], firmware)
    errlog = os.path.join(tmp, f"source-{tag}.stderr")
    with open(errlog, "wb") as err:  # a file, never a pipe nobody reads
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stderr=err)
    con = lc.Console(console)
    last = None
    try:
        mon = lc.Monitor(sock)
        mon.cmd("migrate-set-capabilities",
                {"capabilities": [{"capability": "events", "state": True}]})
        if first_try and con.wait(r"\S", timeout=SILENT_BOOT, proc=p) is None:
            # Seen now and then in the nested host, for every test that boots:
            # the guest's vCPU halts for good before its first console line.
            print(f"# the source's guest printed nothing in {SILENT_BOOT} s (its vCPU halted): "
                  "a boot stuck in the nested host; starting it once more")
            lc.print_threads(p)
            return RETRY
        if not lc.check(con.wait(rf"mig round {SAVE_AT} ", proc=p) is not None,
                        f"source: the workload reaches round {SAVE_AT}"):
            lc.print_threads(p)
        r, done = lc.migrate_until_done(mon, uri)
        lc.check("return" in r, f"migrate {uri}: accepted ({r})")
        lc.check(done is not None and done["data"]["status"] == "completed",
                 f"MIGRATION completed ({done})")
        info = mon.cmd("query-migrate")["return"]
        ram = info.get("ram", {})
        lc.check(info.get("status") == "completed" and ram.get("total") == 256 << 20 and
                 0 < ram.get("normal", 0) and
                 ram.get("normal", 0) + ram.get("duplicate", 0) >= (256 << 20) // 4096 and
                 ram.get("transferred", 0) >= ram.get("normal", 0) * 4096,
                 f"query-migrate: completed, plausible counters ({info})")
        lc.check(mon.cmd("query-status")["return"]["status"] == "postmigrate",
                 "the source is in postmigrate")
        rounds = [int(n) for n in re.findall(r"mig round (\d+) ", con.text())]
        last = rounds[-1] if rounds else None
        mon.send('{"execute": "quit"}')
        lc.check(p.wait(30) == 0, "the source quits with status 0")
    except (qmp_test.CheckFailed, subprocess.TimeoutExpired) as e:
        lc.check(False, f"source: {e}")
    finally:
        text, tail = lc.end_and_tail(p, errlog, 10)
    if text:
        print("# source's stderr:\n" + tail)
    return last


def restore(a, tmp, disk, seed, uri, last, tag, firmware=False):
    args, console = vmm_args(a, tmp, "dest-" + tag, disk, seed, ["-incoming", uri], firmware)
    dev = "vda2" if firmware else "vda"
    try:
        r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=RESTORE_TIMEOUT)
        status, stderr = r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        status, stderr = None, (e.stderr or b"").decode(errors="replace")
    con = lc.Console(console).text()
    rounds = [int(n) for n in re.findall(r"mig round (\d+) ", con)]
    lc.check(status == PASS_STATUS, f"-incoming {uri}: the guest agent finishes "
                                    f"(status {status}, {stderr.strip()[-300:]})")
    if status != PASS_STATUS:
        print("# last console lines:\n" + "\n".join("#   " + l for l in con.splitlines()[-15:]))
    # A line the guest was sending when it was saved ends on the destination's
    # console: the two consoles together hold every round once, in order.
    src = lc.Console(os.path.join(tmp, f"source-{tag}.console")).text()
    both = [int(n) for n in re.findall(r"mig round (\d+) ", src + con)]
    if not lc.check(bool(rounds) and last is not None and rounds[0] > last and
                    both == list(range(1, ROUNDS + 1)),
                    f"the rounds go on from {last} to {ROUNDS}, none lost or repeated "
                    f"({rounds[:1]}..{rounds[-1:]})"):
        print("# source's last rounds, read now:\n" + "\n".join(
            "#   " + l for l in re.findall(r"mig round .*", src)[-4:]))
        print("# destination's first rounds:\n" + "\n".join(
            "#   " + l for l in re.findall(r"mig round .*", con)[:4]))
        print(f"# missing: {sorted(set(range(1, ROUNDS + 1)) - set(both))}, "
              f"repeated: {sorted({n for n in both if both.count(n) > 1})}, "
              f"out of order: {[b for a_, b in zip(both, both[1:]) if b != a_ + 1][:10]}")
        for name, text in (("source", src), ("destination", con)):
            odd = [l for l in text.splitlines()
                   if "round" in l and not re.search(r"mig round \d+ monotonic \d+\s*$", l)]
            print(f"# {name}: {text.count('TAP version')} agent start(s), "
                  f"{text.count('SeaBIOS (version')} firmware start(s), lines with 'round' "
                  f"not of the workload's form: {odd[:5]}")
    lc.check("TAP version" not in con, "the destination did not start the guest agent again")
    lc.check(re.search(r"ok \d+ - mig_workload", con) is not None,
             "memory intact and the clock monotonic across the save")
    lc.check(re.search(rf"ok \d+ - blk {dev}: read back", con) is not None,
             "the disk works after the restore")


def refused(a, tmp, disk, seed, state, what, want, extra=()):
    args, console = vmm_args(a, tmp, "refused", disk, seed, ["-incoming", f"file:{state}"])
    args += list(extra)
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=120)
    lc.check(r.returncode == 1 and want in r.stderr and
             "mig round" not in lc.Console(console).text(),
             f"{what}: refused with '{want}', the guest never runs ({r.returncode}, "
             f"{r.stderr.strip()[-200:]})")


def main():
    a = lc.setup(__doc__)
    if isinstance(a, int):
        return a
    with tempfile.TemporaryDirectory(prefix="qlite-migration-") as tmp:
        seed = int.from_bytes(os.urandom(3), "little") + 1
        state = os.path.join(tmp, "vm.state")
        # A raw disk, then a qcow2 one (its metadata is flushed and read again across the save).
        for tag, uri_out, uri_in, disk in (
                ("file", f"file:{state}", f"file:{state}", os.path.join(tmp, "vda.img")),
                ("exec", f"exec:cat > {state}", f"exec:cat {state}",
                 os.path.join(tmp, "vda.qcow2"))):
            def fresh(disk=disk):
                if disk.endswith(".qcow2"):
                    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "2M"],
                                   check=True)
                else:
                    boot_test.write_file(disk, bytes(2 << 20))

            fresh()
            start = time.monotonic()
            last = save_retrying(a, tmp, disk, seed, uri_out, tag, fresh=fresh)
            print(f"# saved to {uri_out} in {time.monotonic() - start:.1f} s, "
                  f"{os.path.getsize(state) >> 10} KiB")
            start = time.monotonic()
            restore(a, tmp, disk, seed, uri_in, last, tag)
            print(f"# restored from {uri_in} and finished in {time.monotonic() - start:.1f} s")
            if disk.endswith(".qcow2"):
                rc, out = boot_test.qemu_img("check", disk)
                lc.check(rc == 0, f"qemu-img check after the restore: status {rc} ({out[-200:]})")
        data = open(state, "rb").read()
        cut = os.path.join(tmp, "cut.state")
        boot_test.write_file(cut, data[:len(data) // 2])
        refused(a, tmp, disk, seed, cut, "a truncated stream", "truncated")
        bad = bytearray(data)
        bad[len(bad) // 3] ^= 0x40
        boot_test.write_file(cut, bytes(bad))
        refused(a, tmp, disk, seed, cut, "a corrupted stream", "checksum mismatch")
        refused(a, tmp, disk, seed, state, "a VM with other RAM", "does not match",
                ["-m", "128"])
        # Well-formed sections this VM does not have, or larger than its state
        # can be, are refused before they are kept (a stream cannot make the
        # destination hold what its configuration does not need).
        for sid, size, want in ((b"ghost", 8, "section 'ghost' is not one of this VM's"),
                                (b"cpu0", 2 << 20, "larger than this VM's state can be")):
            body = bytes([len(sid)]) + sid + bytes(size)
            prefix = bytes([0x02]) + len(body).to_bytes(4, "little")
            record = prefix + body + zlib.crc32(prefix + body).to_bytes(4, "little")
            # Right after the machine configuration (header 12 bytes, then that
            # record: type, length, body, CRC), before the VM's own sections.
            at = 12 + 5 + int.from_bytes(data[13:17], "little") + 4
            boot_test.write_file(cut, data[:at] + record + data[at:])
            refused(a, tmp, disk, seed, cut, f"a stream with section {sid.decode()} of "
                    f"{size} bytes", want)
        # A VM booted by its firmware (SeaBIOS, a boot loader on the disk):
        # saved and restored the same way; a VM booted without it refuses
        # its state.
        boot = os.path.join(tmp, "boot.img")
        boot_test.build_disk(boot, agent_append(seed, "vda2"))
        last = save_retrying(a, tmp, boot, seed, f"file:{state}", "firmware", firmware=True)
        restore(a, tmp, boot, seed, f"file:{state}", last, "firmware", firmware=True)
        refused(a, tmp, boot, seed, state, "a firmware VM's state in a VM without firmware",
                "does not match")
        lc.keep_consoles(tmp, a.log_dir)
    return 1 if lc.failures else 0


if __name__ == "__main__":
    sys.exit(main())
