#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""-daemonize and -pidfile, as QEMU has them: the parent returns once the
monitors listen, the pid file names the running daemon and is locked while it
runs, a set-up failure reaches the caller's exit status and terminal, and
quit removes the pid file.

Usage: daemonize_test.py --vmm QLITE --kernel TINY_ELF    (exit 0 pass, 1 fail, 77 skip)
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

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


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--kernel", required=True)
    a = ap.parse_args()
    if not os.path.exists("/dev/kvm"):
        print("SKIP: /dev/kvm is missing")
        return 77
    with tempfile.TemporaryDirectory(prefix="qlite-daemon-") as tmp:
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
