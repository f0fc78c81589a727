# SPDX-License-Identifier: GPL-2.0-or-later
"""Host side of the network boot cases (boot_test.py linux-net-*).

The guest agent (tests/guest/agent.c, checks net_addr, net_tx, net_rx)
talks TCP with two peers run here on threads:
- Server: the guest connects (net_tx), sends a stream; we answer with its
  digest once the guest has shut down its side.
- Client: we connect to the guest's listener (net_rx, through hostfwd or the
  tap), send a stream, read back the guest's digest line and its own stream.
Streams carry the disk pattern (disk_pattern) of a seed: net_seed
from the guest, net_seed + 1 to the guest, net_seed + 2 back from it.

Traffic goes only to loopback or into a network namespace made here.
"""
import ctypes
import os
import socket
import subprocess
import threading
import time

from pattern import disk_pattern, stream_digest

NET_BYTES = 4 << 20
GUEST_PORT = 5555
LISTENING = r"qlite-agent: net_rx: listening"
PEER_TIMEOUT = 600  # the guest boots first; its kernel is emulated here
# Where the peers' diagnostics go (bench/run.py keeps its stdout for the table).
report = print


class SkipCase(Exception):
    """The case cannot run on this host (reason in the message)."""


def recv_all(sock):
    chunks = []
    while True:
        d = sock.recv(1 << 16)
        if not d:
            return b"".join(chunks)
        chunks.append(d)


def enter_netns(name):
    """Moves the calling thread (only) into network namespace name."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


class Peer(threading.Thread):
    def __init__(self, netns):
        super().__init__(daemon=True)
        self.netns = netns
        self.failures = []
        self.done = False

    def run(self):
        try:
            if self.netns:
                enter_netns(self.netns)
            self.work()
        except (OSError, ValueError) as e:
            self.failures.append(f"{type(self).__name__}: {e}")

    def result(self):
        self.join(10)
        if not self.done and not self.failures:
            self.failures.append(f"{type(self).__name__}: the guest never completed "
                                 "the exchange")
        return self.failures


class Server(Peer):
    """Accepts the guest's net_tx connection and answers with the digest."""

    def __init__(self, addr, netns=None):
        super().__init__(netns)
        self.addr = addr
        self.port = None
        self.ready = threading.Event()

    def work(self):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.addr, 0))
        ls.listen(1)
        ls.settimeout(PEER_TIMEOUT)
        self.port = ls.getsockname()[1]
        self.ready.set()
        conn, peer = ls.accept()
        ls.close()
        conn.settimeout(120)
        start = time.monotonic()
        data = recv_all(conn)
        secs = time.monotonic() - start
        digest = stream_digest(data)
        conn.sendall(b"%016x\n" % digest)
        conn.close()
        report(f"# net: host received {len(data) >> 10} KiB from the guest in {secs:.2f} s "
              f"({len(data) / 1024 / max(secs, 1e-6):.0f} KiB/s)")
        if len(data) != NET_BYTES:
            self.failures.append(f"server: got {len(data)} bytes, expected {NET_BYTES}")
        self.done = True


class Client(Peer):
    """Connects to the guest's net_rx listener (retrying until it listens)."""

    def __init__(self, addr, port, seed, netns=None):
        super().__init__(netns)
        self.addr, self.port, self.seed = addr, port, seed
        # Set by the harness when the guest says it listens: a connection
        # made earlier through hostfwd is accepted by slirp on the host and
        # only reaches the guest when a retransmitted SYN finds the listener.
        self.listening = threading.Event()

    def work(self):
        send = disk_pattern(self.seed + 1, NET_BYTES)
        back = disk_pattern(self.seed + 2, NET_BYTES)
        if not self.listening.wait(PEER_TIMEOUT):
            self.failures.append("client: the guest never said it listens")
            return
        deadline = time.monotonic() + PEER_TIMEOUT
        while time.monotonic() < deadline:
            try:
                s = socket.create_connection((self.addr, self.port), timeout=120)
                start = time.monotonic()
                s.sendall(send)  # no shutdown: the guest closes first, see net_rx
                reply = recv_all(s)
                secs = time.monotonic() - start
                s.close()
            except OSError:  # refused, reset, no route yet, timed out
                reply = b""
            if not reply:
                time.sleep(1)  # not listening yet (slirp accepts, then resets)
                continue
            report(f"# net: host sent and received {NET_BYTES >> 9} KiB in all in {secs:.2f} s")
            want = b"%016x\n" % stream_digest(send)
            if reply[:17] != want:
                self.failures.append(f"client: guest digest {reply[:17]!r}, expected {want!r}")
            if reply[17:] != back:
                self.failures.append(f"client: guest stream of {len(reply) - 17} bytes "
                                     "differs from its pattern")
            self.done = True
            return
        self.failures.append("client: the guest never accepted a connection")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def checks_append(seed, addr, server):
    return (f"qlite_agent.checks=net_addr,net_tx,net_rx qlite_agent.net_addr={addr} "
            f"qlite_agent.net_server={server} qlite_agent.net_port={GUEST_PORT} "
            f"qlite_agent.net_seed={seed} qlite_agent.net_bytes={NET_BYTES}")


def setup_net_user(tmp, setup_class):
    """User networking: DHCP gives 10.0.2.15; the guest reaches a server on
    the host's loopback through 10.0.2.2, and a host client reaches the
    guest's listener through hostfwd on 127.0.0.1."""
    seed = int.from_bytes(os.urandom(3), "little") + 1
    server = Server("127.0.0.1")
    server.start()
    server.ready.wait(10)
    hport = free_port()
    client = Client("127.0.0.1", hport, seed)
    client.start()
    report(f"# net_seed={seed} server port {server.port} hostfwd port {hport}")
    return setup_class(
        args=["-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{hport}-:{GUEST_PORT}",
              "-device", "virtio-net-pci,netdev=n0"],
        append="ip=dhcp " + checks_append(seed, "10.0.2.15", f"10.0.2.2:{server.port}"),
        post=lambda: server.result() + client.result(),
        watch=[(LISTENING, client.listening)])


TAP_HOST, TAP_GUEST, TAP_IF = "192.168.76.1", "192.168.76.2", "qtap0"


def setup_net_tap(tmp, setup_class):
    """A tap in a network namespace of our own: qlite runs in it, the tap's
    host side has 192.168.76.1, the guest a static 192.168.76.2."""
    ns = f"qlite-test-{os.getpid()}"

    def ip(*args):
        return subprocess.run(["ip"] + list(args), capture_output=True, text=True)

    r = ip("netns", "add", ns)
    if r.returncode != 0:
        raise SkipCase(f"cannot create a network namespace: {r.stderr.strip()}")
    try:
        for cmd in (["-n", ns, "tuntap", "add", "dev", TAP_IF, "mode", "tap"],
                    ["-n", ns, "addr", "add", TAP_HOST + "/24", "dev", TAP_IF],
                    ["-n", ns, "link", "set", TAP_IF, "up"],
                    ["-n", ns, "link", "set", "lo", "up"]):
            r = ip(*cmd)
            if r.returncode != 0:
                raise SkipCase(f"ip {' '.join(cmd)}: {r.stderr.strip()}")
    except SkipCase:
        ip("netns", "del", ns)
        raise
    seed = int.from_bytes(os.urandom(3), "little") + 1
    server = Server(TAP_HOST, netns=ns)
    server.start()
    server.ready.wait(10)
    client = Client(TAP_GUEST, GUEST_PORT, seed, netns=ns)
    client.start()
    report(f"# net_seed={seed} namespace {ns}, server {TAP_HOST}:{server.port}")
    return setup_class(
        prefix=["ip", "netns", "exec", ns],
        args=["-netdev", f"tap,id=t0,ifname={TAP_IF},script=no,downscript=no",
              "-device", "virtio-net-pci,netdev=t0"],
        append=(f"ip={TAP_GUEST}::{TAP_HOST}:255.255.255.0::eth0:off " +
                checks_append(seed, TAP_GUEST, f"{TAP_HOST}:{server.port}")),
        post=lambda: server.result() + client.result(),
        watch=[(LISTENING, client.listening)],
        cleanup=lambda: ip("netns", "del", ns))
