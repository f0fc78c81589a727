#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""VM lifecycle through QMP, on tiny guests.

- -daemonize and -pidfile, as QEMU has them: the parent returns once the
  monitors listen, the pid file names the running daemon and is locked while
  it runs, a set-up failure reaches the caller's exit status and terminal, and
  quit removes the pid file.
- An emulation failure with a monitor: the VM stops in internal-error (STOP),
  stays inspectable, refuses cont, and system_reset brings it back paused.
- -no-shutdown: a guest's ACPI power-off sends SHUTDOWN and STOP and the
  process stays; cont is refused until system_reset (then prelaunch), and
  cont boots the guest again.

- Save and restore between two port writes: a guest writing the alphabet to
  COM1 one OUT at a time, saved while it runs and restored in a new process,
  goes on with the next byte (an OUT is complete only once KVM_RUN is
  entered again; a vCPU saved before that would write its byte twice).

Usage: lifecycle_test.py --vmm QLITE --tiny-dir DIR    (exit 0 pass, 1 fail, 77 skip)
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "boot"))
import guest  # noqa: E402  skip or fail without /dev/kvm

failures = []


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        failures.append(what)


def qmp(path, *commands):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    f = s.makefile("rb")
    lines = [f.readline()]
    s.sendall(b'{"execute": "qmp_capabilities"}')
    lines.append(f.readline())
    for c in commands:
        s.sendall(c)
        lines.append(f.readline())
    return s, f, lines


def read_until(f, pred, limit=20):
    """Reads lines until pred(line) holds; returns that line or None."""
    for _ in range(limit):
        line = f.readline()
        if not line:
            return None
        if pred(line):
            return line
    return None


def internal_error(a, tmp):
    sock = os.path.join(tmp, "ie.sock")
    p = subprocess.Popen([a.vmm, "-kernel", os.path.join(a.tiny_dir, "emulation-failure.elf"),
                          "-display", "none", "-S", "-qmp", f"unix:{sock},server=on,wait=off"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        s, f, lines = qmp(sock, b'{"execute": "cont"}')
        stop = read_until(f, lambda l: b'"STOP"' in l)
        check(stop is not None, "an emulation failure stops the VM with a STOP event")
        s.sendall(b'{"execute": "query-status"}')
        st = read_until(f, lambda l: b'"return"' in l)
        check(st is not None and b'"status": "internal-error"' in st,
              f"query-status says internal-error: {st!r}")
        check(p.poll() is None, "the process stays up, inspectable")
        s.sendall(b'{"execute": "cont", "id": 7}')
        err = read_until(f, lambda l: b'"id": 7' in l)
        check(err is not None and b"Resetting the Virtual Machine is required" in err,
              f"cont is refused until a reset: {err!r}")
        s.sendall(b'{"execute": "system_reset"}')
        check(read_until(f, lambda l: b'"RESET"' in l) is not None, "system_reset: RESET event")
        time.sleep(0.5)
        s.sendall(b'{"execute": "query-status", "id": 8}')
        st = read_until(f, lambda l: b'"id": 8' in l)
        check(st is not None and b'"status": "paused"' in st, f"after the reset: paused: {st!r}")
        s.sendall(b'{"execute": "quit"}')
        read_until(f, lambda l: b'"return"' in l)
        s.close()
        status = p.wait(timeout=10)
        check(status == 0, f"quit ends it with status 0 ({status})")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # Without a monitor nobody could inspect it: the process ends with status 2.
    r = subprocess.run([a.vmm, "-kernel", os.path.join(a.tiny_dir, "emulation-failure.elf"),
                        "-display", "none", "-serial", "null"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    check(r.returncode == 2 and b"emulation failure" in r.stderr,
          f"without a monitor: exit status 2 and the reason ({r.returncode})")


def no_shutdown(a, tmp):
    """-no-shutdown: a guest power-off stops the VM; system_reset and cont run it again."""
    sock, con = os.path.join(tmp, "ns.sock"), os.path.join(tmp, "ns.console")
    p = subprocess.Popen([a.vmm, "-kernel", os.path.join(a.tiny_dir, "poweroff.elf"),
                          "-display", "none", "-nodefaults", "-serial", f"file:{con}",
                          "-no-shutdown", "-S", "-qmp", f"unix:{sock},server=on,wait=off"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        check(wait_for(lambda: os.path.exists(sock), 10), "-no-shutdown: the monitor listens")
        s, f, lines = qmp(sock, b'{"execute": "cont"}')
        shut = read_until(f, lambda l: b'"SHUTDOWN"' in l)
        check(shut is not None and b'"guest": true' in shut and b'"guest-shutdown"' in shut,
              f"the guest's power-off: SHUTDOWN {{guest: true, reason: guest-shutdown}} ({shut!r})")
        check(read_until(f, lambda l: b'"STOP"' in l) is not None, "then STOP")
        s.sendall(b'{"execute": "query-status", "id": 1}')
        st = read_until(f, lambda l: b'"id": 1' in l)
        check(st is not None and b'"status": "shutdown"' in st and p.poll() is None,
              f"the process stays, the VM in shutdown ({st!r})")
        s.sendall(b'{"execute": "cont", "id": 2}')
        err = read_until(f, lambda l: b'"id": 2' in l)
        check(err is not None and b"Resetting the Virtual Machine is required" in err,
              f"cont is refused before a reset, as QEMU ({err!r})")
        s.sendall(b'{"execute": "system_reset", "id": 3}')
        check(read_until(f, lambda l: b'"RESET"' in l) is not None, "system_reset: RESET")
        time.sleep(0.5)
        s.sendall(b'{"execute": "query-status", "id": 4}')
        st = read_until(f, lambda l: b'"id": 4' in l)
        check(st is not None and b'"status": "prelaunch"' in st,
              f"after the reset: prelaunch, as QEMU ({st!r})")
        s.sendall(b'{"execute": "cont", "id": 5}')
        shut = read_until(f, lambda l: b'"SHUTDOWN"' in l)
        check(shut is not None and open(con, "rb").read().count(b"powering off") == 2,
              "cont: the guest boots again and powers off again")
        s.sendall(b'{"execute": "quit"}')
        read_until(f, lambda l: b'"return"' in l)
        s.close()
        status = p.wait(timeout=10)
        check(status == 0, f"quit still ends qlite, status 0 ({status})")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # Without -no-shutdown the same power-off ends qlite with status 0.
    r = subprocess.run([a.vmm, "-kernel", os.path.join(a.tiny_dir, "poweroff.elf"),
                        "-display", "none", "-serial", "null"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    check(r.returncode == 0, f"without -no-shutdown a power-off ends qlite ({r.returncode})")


def wait_for(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def out_boundary(a, tmp):
    """Saved while it writes, restored: the byte stream goes on exactly."""
    kernel = os.path.join(a.tiny_dir, "count.elf")
    sock, state = os.path.join(tmp, "c.sock"), os.path.join(tmp, "c.state")
    src_con, dst_con = os.path.join(tmp, "src.console"), os.path.join(tmp, "dst.console")
    base = [a.vmm, "-kernel", kernel, "-display", "none", "-nodefaults"]
    src = subprocess.Popen(base + ["-serial", f"file:{src_con}", "-qmp",
                                   f"unix:{sock},server=on,wait=off"],
                           stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        check(wait_for(lambda: os.path.exists(src_con) and os.path.getsize(src_con) > 4096, 30),
              "the counting guest writes to its console")
        s, f, lines = qmp(sock, b'{"execute": "migrate", "arguments": {"uri": "file:' +
                          state.encode() + b'"}}')
        check(b'"return"' in lines[2], f"migrate to a file: {lines[2]!r}")

        def completed():
            s.sendall(b'{"execute": "query-migrate"}')
            reply = read_until(f, lambda line: b'"return"' in line)
            return reply is not None and b'"completed"' in reply

        check(wait_for(completed, 60), "the save completes")
        s.sendall(b'{"execute": "quit"}')
        check(src.wait(30) == 0, "the source quits")
    finally:
        if src.poll() is None:
            src.kill()
            src.wait()
    dst = subprocess.Popen(base + ["-serial", f"file:{dst_con}", "-incoming", f"file:{state}"],
                           stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ok = wait_for(lambda: os.path.exists(dst_con) and os.path.getsize(dst_con) > 256, 60)
    finally:
        dst.kill()
        dst.wait()
    check(ok, "the restored guest goes on writing" +
          ("" if ok else f" (status {dst.returncode}: {dst.stderr.read()[-300:]!r})"))
    both = open(src_con, "rb").read() + open(dst_con, "rb").read()
    line = b"abcdefghijklmnopqrstuvwxyz\n"
    want = line * (len(both) // len(line) + 1)
    at = next((i for i in range(len(both)) if both[i] != want[i]), None)
    check(at is None, "source and destination consoles together continue the stream exactly"
          + ("" if at is None else
             f" (differs at byte {at} of {len(both)}, the source wrote "
             f"{os.path.getsize(src_con)}: {both[max(0, at - 8):at + 8]!r})"))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--tiny-dir", required=True)
    a = ap.parse_args()
    a.kernel = os.path.join(a.tiny_dir, "hello.elf")
    status = guest.missing("lifecycle", need_guest=False)
    if status is not None:
        return status
    with tempfile.TemporaryDirectory(prefix="qlite-lifecycle-") as tmp:
        internal_error(a, tmp)
        no_shutdown(a, tmp)
        out_boundary(a, tmp)
        sock, pidf = os.path.join(tmp, "q.sock"), os.path.join(tmp, "q.pid")
        base = [a.vmm, "-kernel", a.kernel, "-display", "none", "-S"]
        start = time.monotonic()
        r = subprocess.run(base + ["-daemonize", "-pidfile", pidf,
                                   "-qmp", f"unix:{sock},server=on,wait=off"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        check(r.returncode == 0, f"the parent exits 0 (got {r.returncode}, {r.stderr!r})")
        check(time.monotonic() - start < 20, "the parent does not wait for the VM to end")
        check(os.path.exists(sock), "the monitor listens when the parent has exited")
        pid = int(open(pidf).read().strip()) if os.path.exists(pidf) else -1
        alive = pid > 0 and os.path.exists(f"/proc/{pid}")
        check(alive, f"the pid file names a running process ({pid})")
        if alive:
            check(os.path.realpath(f"/proc/{pid}/exe") == os.path.realpath(a.vmm),
                  "that process is the VMM")
            check(os.getsid(pid) == pid, "the daemon leads its own session")
        r2 = subprocess.run(base + ["-pidfile", pidf], stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=30)
        check(r2.returncode == 1 and b"cannot lock pid file" in r2.stderr,
              f"a second VMM cannot take the locked pid file ({r2.returncode}, {r2.stderr!r})")
        if os.path.exists(sock):
            s, f, lines = qmp(sock, b'{"execute": "query-status"}', b'{"execute": "quit"}')
            check(b'"status": "prelaunch"' in lines[2], f"the daemon answers QMP: {lines[2]!r}")
            f.readline()  # the return of quit, after its SHUTDOWN event
            s.close()
        for _ in range(100):
            if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
                break
            time.sleep(0.05)
        check(pid > 0 and not os.path.exists(f"/proc/{pid}"), "quit ends the daemon")
        check(not os.path.exists(pidf), "the pid file is removed at exit")
        # A set-up failure in the child reaches the caller: message and status.
        r3 = subprocess.run([a.vmm, "-daemonize", "-kernel", os.path.join(tmp, "missing"),
                             "-display", "none"], stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=30)
        check(r3.returncode == 1 and b"cannot read kernel" in r3.stderr,
              f"a set-up failure exits 1 with its message ({r3.returncode}, {r3.stderr!r})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
