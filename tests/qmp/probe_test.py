#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A manager's capability probe, as libvirt 9.0 makes it, with QEMU 7.2 as
the reference. Needs no KVM: the probe runs `-machine none`.

1. The emulator started as libvirt starts it (-S -no-user-config -nodefaults
   -nographic -machine none,accel=kvm:tcg -qmp ... -pidfile F -daemonize):
   the parent exits 0 once the monitor listens, the pid file names the
   daemon. Then libvirt's commands in libvirt's order, each answer checked
   for the shape libvirt reads (and for what would crash or fail libvirt
   9.0: an error from qom-list-properties, a query-cpu-definitions error).
2. What qlite says of itself holds together: query-commands and the
   schema's commands are the same set, every command of query-commands
   exists (no CommandNotFound), every type the schema names is in it, every
   device type of qom-list-types answers device-list-properties; quit ends
   the daemon with SHUTDOWN and removes the pid file.
3. (qlite only, where libvirt is installed and this runs as root) libvirtd
   itself, its state in a private mount namespace, probes qlite: its
   capability cache names the PC machine and the flags qlite announced.

Usage: probe_test.py --vmm PATH [--reference] [-v]   (TAP; exit 0 or 1)
"""
import argparse
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

PASSED = []
FAILED = []
VERBOSE = False


def check(cond, what):
    (PASSED if cond else FAILED).append(what)
    print(f"{'ok' if cond else 'not ok'} {len(PASSED) + len(FAILED)} - {what}")
    return cond


class Monitor:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.f = self.sock.makefile("rwb")
        self.events = []
        self.greeting = json.loads(self.f.readline())

    def cmd(self, name, args=None):
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        if VERBOSE:
            print(f"# -> {json.dumps(msg)}")
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError(f"monitor closed after {name}")
            r = json.loads(line)
            if "event" in r:
                self.events.append(r)
                continue
            if VERBOSE:
                print(f"# <- {json.dumps(r)[:300]}")
            return r

    def wait_closed(self, timeout=10):
        self.sock.settimeout(timeout)
        try:
            for line in self.f:
                r = json.loads(line)
                if "event" in r:
                    self.events.append(r)
        except ConnectionResetError:
            pass  # QEMU closes without reading what is left


def ret(r):
    return r.get("return")


def probe(a, tmp):
    sock = os.path.join(tmp, "qmp.monitor")
    pidfile = os.path.join(tmp, "qmp.pid")
    args = [a.vmm, "-S", "-no-user-config", "-nodefaults", "-nographic",
            "-machine", "none,accel=kvm:tcg", "-qmp", f"unix:{sock},server=on,wait=off",
            "-pidfile", pidfile, "-daemonize"]
    r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60)
    if not check(r.returncode == 0 and os.path.exists(pidfile),
                 f"started as libvirt starts it: exit 0, pid file written "
                 f"({r.returncode}, {r.stderr.strip()[-200:]})"):
        return
    pid = int(open(pidfile).read().strip())
    mon = Monitor(sock)
    try:
        ask(a, mon)
    finally:
        mon.cmd("quit")
        mon.wait_closed()
        for _ in range(100):
            if not os.path.exists(f"/proc/{pid}"):
                break
            time.sleep(0.1)
        check(not os.path.exists(f"/proc/{pid}") and not os.path.exists(pidfile),
              "quit: the daemon ends and removes its pid file")
        check(any(e["event"] == "SHUTDOWN" and e["data"]["reason"] == "host-qmp-quit"
                  for e in mon.events), "quit: SHUTDOWN {reason: host-qmp-quit}")


def ask(a, mon):
    check(mon.greeting.get("QMP", {}).get("capabilities") == ["oob"], "greeting")
    check(ret(mon.cmd("qmp_capabilities")) == {}, "qmp_capabilities")
    v = ret(mon.cmd("query-version")) or {}
    q = v.get("qemu", {})
    check((q.get("major"), q.get("minor")) >= (4, 2) and isinstance(v.get("package"), str),
          f"query-version: at least QEMU 4.2, libvirt 9.0's minimum ({v})")
    check(ret(mon.cmd("query-target")) == {"arch": "x86_64"}, "query-target: x86_64")

    schema = ret(mon.cmd("query-qmp-schema"))
    names = {e["name"]: e for e in schema or []}
    check(isinstance(schema, list) and len(names) == len(schema),
          f"query-qmp-schema: a list of {len(schema or [])} entities, names unique")
    refs = [e[k] for e in schema or [] for k in ("arg-type", "ret-type", "element-type")
            if k in e]
    refs += [m["type"] for e in schema or [] if e["meta-type"] == "object"
             for m in e["members"]]
    missing = sorted({r for r in refs if r not in names})
    check(not missing, f"query-qmp-schema: every type it names is in it ({missing[:5]})")

    commands = {c["name"] for c in ret(mon.cmd("query-commands")) or []}
    in_schema = {e["name"] for e in schema or [] if e["meta-type"] == "command"}
    check(commands == in_schema,
          f"query-commands and the schema's commands agree "
          f"({sorted(commands ^ in_schema)[:5]})")
    kvm = ret(mon.cmd("query-kvm")) or {}
    check(set(kvm) == {"enabled", "present"} and kvm["present"] and
          kvm["enabled"] == os.access("/dev/kvm", os.R_OK | os.W_OK),
          f"query-kvm: KVM built in, enabled when /dev/kvm is usable ({kvm})")

    types = ret(mon.cmd("qom-list-types")) or []
    tnames = {t["name"] for t in types}
    want = {"virtio-blk-pci", "virtio-net-pci", "virtio-rng-pci", "rng-random",
            "none-machine", "max-x86_64-cpu"}
    check(want <= tnames, f"qom-list-types has what qlite has ({sorted(want - tnames)})")
    if not a.reference:
        # libvirt would probe a second time for TCG, and offer type='qemu' domains.
        check("tcg-accel" not in tnames, "qom-list-types: no tcg-accel (qlite is KVM only)")
        for t in sorted(tnames):
            dl = mon.cmd("device-list-properties", {"typename": t})
            ql = mon.cmd("qom-list-properties", {"typename": t})
            check(isinstance(ret(ql), list) and
                  (isinstance(ret(dl), list) or dl["error"]["class"] == "GenericError"),
                  f"{t}: qom-list-properties a list, device-list-properties a list or "
                  f"not a device")
    # Asked by libvirt whatever qom-list-types says.
    for t in ("virtio-blk-pci", "scsi-hd", "ide-hd", "PIIX4_PM", "kvm-pit",
              "virtio-balloon-pci", "usb-host"):
        r = mon.cmd("device-list-properties", {"typename": t})
        check(isinstance(ret(r), list) or r.get("error", {}).get("class") == "DeviceNotFound",
              f"device-list-properties {t}: a list or DeviceNotFound ({str(r)[:120]})")
    r = mon.cmd("device-list-properties", {"typename": "nosuch"})
    check(r.get("error") == {"class": "DeviceNotFound", "desc": "Device 'nosuch' not found"},
          f"device-list-properties of an unknown type: DeviceNotFound ({r})")
    r = mon.cmd("device-list-properties", {"typename": "pci-device"})
    check(r.get("error", {}).get("desc") ==
          "Parameter 'typename' expects a non-abstract device type",
          f"device-list-properties of an abstract type refused as QEMU ({r})")
    props = {p["name"]: p for p in
             ret(mon.cmd("device-list-properties", {"typename": "virtio-blk-pci"})) or []}
    check({"drive", "bootindex"} <= set(props) and
          all(isinstance(p.get("type"), str) for p in props.values()),
          f"virtio-blk-pci: its drive and bootindex properties, each with a type")
    # libvirt 9.0 crashes on an error here (it reads a NULL list).
    for t in ("memory-backend-file", "none-machine"):
        r = mon.cmd("qom-list-properties", {"typename": t})
        check(isinstance(ret(r), list), f"qom-list-properties {t}: a list ({str(r)[:100]})")

    machines = ret(mon.cmd("query-machines")) or []
    pc = [m for m in machines if "pc" in (m.get("name"), m.get("alias"))]
    check(len(pc) == 1 and pc[0]["name"].startswith("pc-i440fx") and
          isinstance(pc[0].get("cpu-max"), int),
          f"query-machines: one i440FX PC, alias pc ({pc})")
    check(any(m["name"] == "none" for m in machines), "query-machines: none")
    if "query-cpu-definitions" in commands:
        defs = ret(mon.cmd("query-cpu-definitions"))
        check(isinstance(defs, list) and any(d["name"] == "host" for d in defs),
              "query-cpu-definitions: a list with host (an error crashes libvirt 9.0)")
    opts = ret(mon.cmd("query-command-line-options")) or []
    sandbox = [o for o in opts if o["option"] == "sandbox"]
    check(len(sandbox) == 1 and {"enable", "spawn", "obsolete", "elevateprivileges",
                                 "resourcecontrol"} <= {p["name"] for p in sandbox[0]["parameters"]},
          "query-command-line-options: -sandbox with QEMU's parameters")
    r = mon.cmd("query-command-line-options", {"option": "nosuch"})
    check(r.get("error", {}).get("desc") == "invalid option name: nosuch",
          f"query-command-line-options of an unknown option refused as QEMU ({r})")
    caps = ret(mon.cmd("query-migrate-capabilities")) or []
    check(any(c["capability"] == "events" for c in caps), "query-migrate-capabilities: events")
    status = ret(mon.cmd("query-status")) or {}
    check(status.get("status") == "prelaunch", f"-S: prelaunch ({status})")

    # Every command query-commands lists exists (arguments may be refused).
    missing = [c for c in sorted(commands) if c not in ("quit", "qmp_capabilities") and
               mon.cmd(c).get("error", {}).get("class") == "CommandNotFound"]
    check(not missing, f"every command query-commands lists exists ({missing[:5]})")


def libvirt_probe(a, tmp):
    """libvirtd's own probe, its state in a private mount namespace."""
    if a.reference or os.geteuid() != 0 or not shutil.which("libvirtd"):
        print("# libvirtd's probe: needs root and libvirt-daemon-system (qlite only)")
        return
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libvirt-ns.sh")
    r = subprocess.run(["unshare", "-m", script, tmp, "virsh", "-c", "qemu:///system",
                        "domcapabilities", "--emulatorbin", os.path.abspath(a.vmm)],
                       capture_output=True, text=True, timeout=180)
    cache = glob.glob(os.path.join(tmp, "libvirt", "cache", "qemu", "capabilities", "*.xml"))
    text = open(cache[0]).read() if cache else ""
    check(f"<emulator>{os.path.abspath(a.vmm)}</emulator>" in text and
          "name='pc-i440fx-7.2' alias='pc'" in text and "<flag name='seccomp-sandbox'/>" in text,
          f"libvirtd probes qlite: its cache has the PC and the -sandbox flag "
          f"({r.stderr.strip()[-200:]})")


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vmm", default=None)
    ap.add_argument("--reference", action="store_true", help="against qemu-system-x86_64")
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()
    VERBOSE = a.v
    a.vmm = a.vmm or ("qemu-system-x86_64" if a.reference else None)
    if not a.vmm:
        ap.error("--vmm is required (or --reference)")
    with tempfile.TemporaryDirectory(prefix="qlite-probe-") as tmp:
        try:
            probe(a, tmp)
        except (OSError, EOFError, ValueError) as e:
            check(False, f"probe: {e}")
        libvirt_probe(a, tmp)
    print(f"1..{len(PASSED) + len(FAILED)}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
