#!/usr/bin/env python3
"""QMP protocol tests for qlite, with QEMU 7.2 as the reference.

Starts the VMM under test with -S and a unix QMP socket in a temporary
directory, drives it with a small scripted client written here (socket, json,
select only) and compares what comes back with what QEMU 7.2 sends.  Run with
--reference against qemu-system-x86_64 to confirm that every expectation is
QEMU's real behaviour.

Usage:
  qmp_test.py --vmm PATH --kernel KERNEL [--case NAME]... [--reference]
              [--ignore-key-order] [--list] [-v]

Output is TAP-like: one "ok N - name" / "not ok N - name" line per case,
diagnostics on "# " lines.  Exit status 0 when every selected case passed,
1 when one failed, 77 when /dev/kvm is missing (skip; under CI=true a failure).
"""

import argparse
import array
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_KERNEL = os.path.join(REPO, 'build', 'tests', 'boot', 'tiny', 'hello.elf')

# How long to wait for a reply that must come, and how long to listen for
# one that must not.
REPLY_TIMEOUT = 5.0
SILENCE = 0.5

OPTS = None  # parsed command line, set in main()


class CheckFailed(Exception):
    pass


def fail(what, expected=None, got=None):
    msg = what
    if expected is not None or got is not None:
        msg += '\n  expected: %s\n  got:      %s' % (show(expected), show(got))
    raise CheckFailed(msg)


def show(v):
    if isinstance(v, bytes):
        return v.decode('utf-8', 'backslashreplace').replace('\r', '\\r').replace('\n', '\\n')
    if isinstance(v, str):
        return v
    return repr(v)


def check(cond, what, expected=None, got=None):
    if not cond:
        fail(what, expected, got)


# ---------------------------------------------------------------------------
# Normalisation: the only fields allowed to differ between QEMU and qlite.
# ---------------------------------------------------------------------------

def norm_timestamp(msg):
    """An event's timestamp must be {"seconds": int, "microseconds": int}
    close to now; its values are replaced by placeholders."""
    ts = msg.get('timestamp')
    check(isinstance(ts, dict) and list(ts.keys()) == ['seconds', 'microseconds'],
          'event timestamp shape', '{"seconds": S, "microseconds": U}', ts)
    s, us = ts['seconds'], ts['microseconds']
    check(type(s) is int and type(us) is int and 0 <= us < 1000000,
          'event timestamp values', 'integers, 0 <= microseconds < 1000000', ts)
    check(abs(s + us / 1e6 - time.time()) < 60,
          'event timestamp is wall-clock time (within 60 s of now)',
          int(time.time()), s)
    ts['seconds'] = '<S>'
    ts['microseconds'] = '<US>'


def norm_version(v):
    """{"qemu": {"micro", "minor", "major"}, "package"}: numbers and package
    string differ between QEMU and qlite; their types and the shape must not."""
    check(isinstance(v, dict) and set(v) == {'qemu', 'package'},
          'version object members', '{"qemu", "package"}', v)
    q = v['qemu']
    check(isinstance(q, dict) and set(q) == {'major', 'minor', 'micro'},
          'version.qemu members', '{"major", "minor", "micro"}', q)
    for k in q:
        check(type(q[k]) is int and q[k] >= 0, 'version.qemu.%s is a non-negative int' % k,
              'int', q[k])
        q[k] = '<%s>' % k.upper()
    check(isinstance(v['package'], str), 'version.package is a string', 'str', v['package'])
    v['package'] = '<PKG>'


def render(obj):
    """The text QEMU would send for obj (its separators are ', ' and ': ',
    members in the order they were received)."""
    if OPTS.ignore_key_order:
        return json.dumps(obj, sort_keys=True)
    return json.dumps(obj)


def expect_msg(msg, expected, what, normalise=None):
    """Compare one received message with the expected text.  `expected` is
    written exactly as QEMU sends it, with <PLACEHOLDERS> for normalised
    fields."""
    obj = json.loads(json.dumps(msg.obj))  # deep copy, order kept
    if normalise:
        normalise(obj)
    if 'event' in obj and 'timestamp' in obj:
        norm_timestamp(obj)
    exp = json.dumps(json.loads(expected), sort_keys=True) if OPTS.ignore_key_order else expected
    check(render(obj) == exp, what, expected + '\\r\\n', msg.raw)


# ---------------------------------------------------------------------------
# The client.
# ---------------------------------------------------------------------------

class Msg:
    def __init__(self, raw):
        self.raw = raw
        text = raw[:-2].decode('utf-8')
        try:
            self.obj = json.loads(text)
        except ValueError as e:
            fail('server sent invalid JSON (%s)' % e, 'a JSON object', raw)
        check(isinstance(self.obj, dict), 'server message is a JSON object', 'object', raw)

    def __repr__(self):
        return show(self.raw)


class Client:
    def __init__(self, path, connect_timeout=5.0):
        self.path = path
        self.buf = b''
        self.eof = False
        deadline = time.time() + connect_timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.02)
        self.sock = s

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode('utf-8')
        if OPTS.verbose:
            print('# -> %s' % show(data))
        self.sock.sendall(data)

    def _fill(self, timeout):
        """Read what is there within timeout; False on timeout."""
        if self.eof:
            return False
        r, _, _ = select.select([self.sock], [], [], max(timeout, 0))
        if not r:
            return False
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b''
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def recv_raw(self, timeout=REPLY_TIMEOUT):
        """One server line, raw, including its line end; None on timeout or EOF."""
        deadline = time.time() + timeout
        while b'\n' not in self.buf:
            if not self._fill(deadline - time.time()):
                if self.eof or time.time() >= deadline:
                    return None
        line, self.buf = self.buf.split(b'\n', 1)
        line += b'\n'
        if OPTS.verbose:
            print('# <- %s' % show(line))
        return line

    def recv(self, what, timeout=REPLY_TIMEOUT):
        raw = self.recv_raw(timeout)
        if raw is None:
            fail('%s: no message (%s)' % (what, 'connection closed' if self.eof else
                                            'timeout after %.1f s' % timeout),
                 'a message', self.buf or b'')
        check(raw.endswith(b'\r\n') and b'\r' not in raw[:-2],
              '%s: every message is one line ending in CRLF' % what, '...}\\r\\n', raw)
        return Msg(raw)

    def expect_silence(self, what, timeout=SILENCE):
        raw = self.recv_raw(timeout)
        check(raw is None and not self.buf, '%s: nothing may arrive' % what,
              'nothing', raw if raw is not None else self.buf)

    def expect_eof(self, what, timeout=REPLY_TIMEOUT):
        deadline = time.time() + timeout
        while not self.eof and time.time() < deadline:
            self._fill(deadline - time.time())
        check(self.eof and not self.buf, '%s: server closes the connection' % what,
              'EOF', self.buf if self.buf else 'connection still open')

    def greeting(self):
        return self.recv('greeting')

    def negotiate(self):
        self.greeting()
        self.send('{"execute": "qmp_capabilities"}')
        m = self.recv('qmp_capabilities reply')
        check(m.raw == b'{"return": {}}\r\n', 'qmp_capabilities', '{"return": {}}\\r\\n', m.raw)
        return self

    def execute(self, name, args=None, id=None, events=None):
        """Send one command; return its reply.  Events that come before the
        reply are appended to `events` when given, a failure otherwise."""
        cmd = {'execute': name}
        if args is not None:
            cmd['arguments'] = args
        if id is not None:
            cmd['id'] = id
        self.send(json.dumps(cmd))
        while True:
            m = self.recv('reply to %s' % name)
            if 'event' in m.obj:
                if events is None:
                    fail('unexpected event before the reply to %s' % name, 'the reply', m.raw)
                events.append(m)
                continue
            return m


def ok_return(m, what):
    check('return' in m.obj, '%s succeeds' % what, '{"return": ...}', m.raw)
    return m.obj['return']


# ---------------------------------------------------------------------------
# Starting the VMM.
# ---------------------------------------------------------------------------

class VM:
    def __init__(self, extra=(), qmp=True, pass_fds=()):
        self.dir = tempfile.mkdtemp(prefix='qmp-test-')
        self.sock = os.path.join(self.dir, 'qmp.sock')
        args = [OPTS.vmm]
        if OPTS.reference:
            args += ['-M', 'microvm,acpi=off', '-cpu', 'host,-arch-capabilities']
        args += ['-accel', 'kvm', '-nodefaults', '-no-user-config', '-display', 'none',
                 '-m', '64', '-kernel', OPTS.kernel, '-S']
        if qmp:
            args += ['-qmp', 'unix:%s,server=on,wait=off' % self.sock]
        args += [a.replace('@DIR@', self.dir) for a in extra]
        args += OPTS.vmm_arg
        self.args = args
        if OPTS.verbose:
            print('# run: %s' % ' '.join(args))
        self.out = open(os.path.join(self.dir, 'output'), 'wb')
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, pass_fds=pass_fds)
        self.clients = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def wait_socket(self, path, timeout=10.0):
        deadline = time.time() + timeout
        while not os.path.exists(path):
            if self.proc.poll() is not None:
                fail('VMM exited (status %d) before creating %s' % (self.proc.returncode, path),
                     'a running VMM', self.output())
            if time.time() > deadline:
                fail('no socket %s after %.0f s' % (path, timeout), 'socket', self.output())
            time.sleep(0.02)

    def connect(self, path=None):
        path = path or self.sock
        self.wait_socket(path)
        c = Client(path)
        self.clients.append(c)
        return c

    def output(self):
        self.out.flush()
        with open(os.path.join(self.dir, 'output'), 'rb') as f:
            return f.read()[-2000:]

    def wait_exit(self, timeout=REPLY_TIMEOUT):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        for c in self.clients:
            c.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            if self.wait_exit(3) is None:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def with_vm(fn):
    """Decorator: the case gets a fresh VM (-S, unix QMP socket) and it is
    torn down afterwards whatever happens."""
    def run(extra=()):
        vm = VM(extra)
        try:
            fn(vm)
        except CheckFailed as e:
            out = vm.output()
            if out and show(out) not in e.args[0]:
                e.args = (e.args[0] + '\n  VMM output (tail): ' + show(out),)
            raise
        finally:
            vm.close()
    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


# ---------------------------------------------------------------------------
# Cases.
# ---------------------------------------------------------------------------

CASES = []


def case(name):
    def reg(fn):
        CASES.append((name, fn))
        return fn
    return reg


@case('greeting')
@with_vm
def t_greeting(vm):
    """One CRLF line: {"QMP": {"version": {"qemu": {...}, "package"}, "capabilities": ["oob"]}}."""
    c = vm.connect()
    g = c.greeting()
    check(list(g.obj.keys()) == ['QMP'], 'greeting has the single member QMP', '["QMP"]',
          list(g.obj.keys()))
    v = g.obj['QMP'].get('version')
    q = (v or {}).get('qemu') or {}
    major, minor = q.get('major'), q.get('minor')
    check(type(major) is int and type(minor) is int and (major, minor) >= (4, 2),
          'reported version is at least 4.2 (libvirt minimum)', '>= 4.2', (major, minor))
    expect_msg(g, '{"QMP": {"version": {"qemu": {"micro": "<MICRO>", "minor": "<MINOR>", '
               '"major": "<MAJOR>"}, "package": "<PKG>"}, "capabilities": ["oob"]}}',
               'greeting', lambda o: norm_version(o['QMP']['version']))
    check(g.raw == json.dumps(g.obj).encode() + b'\r\n', 'greeting formatting (", " and ": ")',
          json.dumps(g.obj) + '\\r\\n', g.raw)
    c.expect_silence('after the greeting')


@case('negotiation')
@with_vm
def t_negotiation(vm):
    """Commands before qmp_capabilities are refused; a second qmp_capabilities
    is refused; id echoed on both errors."""
    c = vm.connect()
    c.greeting()
    c.send('{"execute": "query-status"}')
    expect_msg(c.recv('command before negotiation'),
               '{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities '
               'negotiation with \'qmp_capabilities\'"}}', 'command before negotiation')
    c.send('{"execute": "query-status", "id": 5}')
    expect_msg(c.recv('command with id before negotiation'),
               '{"id": 5, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities '
               'negotiation with \'qmp_capabilities\'"}}', 'command with id before negotiation')
    c.send('{"execute": "no-such-command", "id": 6}')
    expect_msg(c.recv('unknown command before negotiation'),
               '{"id": 6, "error": {"class": "CommandNotFound", "desc": "Expecting capabilities '
               'negotiation with \'qmp_capabilities\'"}}', 'unknown command before negotiation')
    c.send('{"execute": "qmp_capabilities", "arguments": {"enable": ["bogus"]}}')
    expect_msg(c.recv('qmp_capabilities with an unknown capability'),
               '{"error": {"class": "GenericError", "desc": '
               '"Parameter \'null\' does not accept value \'bogus\'"}}',
               'qmp_capabilities enable=["bogus"]')
    c.send('{"execute": "qmp_capabilities", "arguments": {"enable": "oob"}}')
    expect_msg(c.recv('qmp_capabilities with enable not a list'),
               '{"error": {"class": "GenericError", "desc": '
               '"Invalid parameter type for \'enable\', expected: array"}}',
               'qmp_capabilities enable="oob"')
    c.send('{"execute": "qmp_capabilities", "arguments": {"foo": 1}}')
    expect_msg(c.recv('qmp_capabilities with an unknown argument'),
               '{"error": {"class": "GenericError", "desc": "Parameter \'foo\' is unexpected"}}',
               'qmp_capabilities foo=1')
    c.send('{"execute": "qmp_capabilities", "id": "neg"}')
    expect_msg(c.recv('qmp_capabilities'), '{"return": {}, "id": "neg"}', 'qmp_capabilities')
    c.send('{"execute": "qmp_capabilities"}')
    expect_msg(c.recv('second qmp_capabilities'),
               '{"error": {"class": "CommandNotFound", "desc": "Capabilities negotiation is '
               'already complete, command ignored"}}', 'second qmp_capabilities')
    c.send('{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": 2}')
    expect_msg(c.recv('third qmp_capabilities, with oob'),
               '{"id": 2, "error": {"class": "CommandNotFound", "desc": "Capabilities '
               'negotiation is already complete, command ignored"}}', 'third qmp_capabilities')
    # Still in command mode.
    m = c.execute('query-status', id='after')
    expect_msg(m, '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, '
               '"id": "after"}', 'query-status after negotiation')


@case('negotiation-oob')
@with_vm
def t_negotiation_oob(vm):
    """qmp_capabilities {"enable": ["oob"]} is accepted; afterwards exec-oob is
    understood (and refused for a command that is not OOB-capable)."""
    c = vm.connect()
    c.greeting()
    c.send('{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": 7}')
    expect_msg(c.recv('qmp_capabilities with oob'), '{"return": {}, "id": 7}',
               'qmp_capabilities enable=["oob"]')
    c.send('{"exec-oob": "query-status", "id": 8}')
    expect_msg(c.recv('exec-oob of a normal command'),
               '{"id": 8, "error": {"class": "GenericError", "desc": '
               '"The command query-status does not support OOB"}}', 'exec-oob query-status')
    m = c.execute('query-status', id=9)
    expect_msg(m, '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, '
               '"id": 9}', 'query-status in oob mode')


@case('ids')
@with_vm
def t_ids(vm):
    """The id of a command, of any JSON type, comes back unchanged, on
    successes and on errors."""
    c = vm.connect().negotiate()
    ids = [
        ('1', b'1'), ('-3', b'-3'), ('12345678901234567890', b'12345678901234567890'),
        ('"abc"', b'"abc"'), ('""', b'""'), ('{"a": [1, null]}', b'{"a": [1, null]}'),
        ('{}', b'{}'), ('[1, "a", {}]', b'[1, "a", {}]'), ('[]', b'[]'),
        ('null', b'null'), ('true', b'true'), ('false', b'false'), ('1.5', b'1.5'),
        ('-0.25', b'-0.25'),
    ]
    for text, want in ids:
        c.send('{"execute": "query-name", "id": %s}' % text)
        m = c.recv('query-name with id %s' % text)
        check(m.raw == b'{"return": {}, "id": ' + want + b'}\r\n',
              'id %s echoed on success' % text, '{"return": {}, "id": %s}\\r\\n' % text, m.raw)
        c.send('{"execute": "no-such-command", "id": %s}' % text)
        m = c.recv('unknown command with id %s' % text)
        check(m.raw == b'{"id": ' + want + b', "error": {"class": "CommandNotFound", '
              b'"desc": "The command no-such-command has not been found"}}\r\n',
              'id %s echoed on error' % text,
              '{"id": %s, "error": {...CommandNotFound...}}\\r\\n' % text, m.raw)
    # Values whose text QEMU does not keep: equal as JSON values, and QEMU's
    # spelling recorded (doubles are printed with 17 significant digits,
    # non-ASCII characters as \\uXXXX with upper-case hex).
    loose = [('0.1', 0.1, b'0.10000000000000001'), ('1e3', 1000, b'1000'),
             ('"\\u00e9\\u4e2d"', '\u00e9\u4e2d', b'"\\u00E9\\u4E2D"'),
             ('"\xc3\xa9"', '\u00e9', b'"\\u00E9"')]
    for text, value, qemu_spelling in loose:
        c.send(b'{"execute": "query-name", "id": ' + text.encode('latin-1') + b'}')
        m = c.recv('query-name with id %s' % text)
        check(m.obj.get('id') == value and type(m.obj.get('id')) in (type(value), float, int),
              'id %s echoed as the same JSON value' % text, value, m.raw)
        if OPTS.reference:
            check(m.raw == b'{"return": {}, "id": ' + qemu_spelling + b'}\r\n',
                  'QEMU spelling of id %s' % text, qemu_spelling, m.raw)


@case('errors')
@with_vm
def t_errors(vm):
    """Unknown command, bad command objects and bad arguments: QEMU's classes
    and descs, id echoed when there is one."""
    c = vm.connect().negotiate()
    cases = [
        ('{"execute": "x"}',
         '{"error": {"class": "CommandNotFound", "desc": "The command x has not been found"}}'),
        ('{"execute": "x", "id": 1}',
         '{"id": 1, "error": {"class": "CommandNotFound", "desc": "The command x has not been found"}}'),
        ('{"execute": "query-status", "foo": 1}',
         '{"error": {"class": "GenericError", "desc": "QMP input member \'foo\' is unexpected"}}'),
        ('{"execute": "query-status", "id": {"a": [1, null]}, "x": 1}',
         '{"id": {"a": [1, null]}, "error": {"class": "GenericError", '
         '"desc": "QMP input member \'x\' is unexpected"}}'),
        ('{"id": 2}',
         '{"id": 2, "error": {"class": "GenericError", "desc": "QMP input lacks member \'execute\'"}}'),
        ('{}',
         '{"error": {"class": "GenericError", "desc": "QMP input lacks member \'execute\'"}}'),
        ('{"execute": 5}',
         '{"error": {"class": "GenericError", "desc": "QMP input member \'execute\' must be a string"}}'),
        ('{"execute": "query-status", "arguments": []}',
         '{"error": {"class": "GenericError", "desc": "QMP input member \'arguments\' must be an object"}}'),
        ('{"execute": "query-status", "arguments": 5}',
         '{"error": {"class": "GenericError", "desc": "QMP input member \'arguments\' must be an object"}}'),
        ('[1]',
         '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}'),
        ('"s"',
         '{"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}}'),
        ('{"execute": "human-monitor-command"}',
         '{"error": {"class": "GenericError", "desc": "Parameter \'command-line\' is missing"}}'),
        ('{"execute": "human-monitor-command", "arguments": {"command-line": 5}, "id": "h"}',
         '{"id": "h", "error": {"class": "GenericError", '
         '"desc": "Invalid parameter type for \'command-line\', expected: string"}}'),
        ('{"execute": "human-monitor-command", "arguments": {"command-line": "info status", "x": 1}}',
         '{"error": {"class": "GenericError", "desc": "Parameter \'x\' is unexpected"}}'),
        ('{"execute": "query-status", "arguments": {"a": 1}}',
         '{"error": {"class": "GenericError", "desc": "Parameter \'a\' is unexpected"}}'),
        ('{"execute": "quit", "arguments": {"x": 1}}',
         '{"error": {"class": "GenericError", "desc": "Parameter \'x\' is unexpected"}}'),
        ('{"execute": "device_del", "arguments": {"id": "nope"}}',
         '{"error": {"class": "DeviceNotFound", "desc": "Device \'nope\' not found"}}'),
        ('{"execute": "device_del"}',
         '{"error": {"class": "GenericError", "desc": "Parameter \'id\' is missing"}}'),
        # \u0000 would cut a C string short: refused wherever it is, as QEMU does.
        ('{"execute": "query-name\\u0000-anything"}',
         '{"error": {"class": "GenericError", "desc": "JSON parse error, \\\\u0000 is not supported"}}'),
        ('{"execute": "query-status", "id": "x\\u0000y"}',
         '{"error": {"class": "GenericError", "desc": "JSON parse error, \\\\u0000 is not supported"}}'),
        ('{"execute": "human-monitor-command", "arguments": {"command-line": "info status\\u0000x"}}',
         '{"error": {"class": "GenericError", "desc": "JSON parse error, \\\\u0000 is not supported"}}'),
        # An escaped backslash before u0000 is no NUL.
        ('{"execute": "query-status", "id": "a\\\\u0000"}',
         '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, '
         '"id": "a\\\\u0000"}'),
        # Without arguments: every parameter optional, or a required one missing.
        ('{"execute": "migrate-set-parameters"}', '{"return": {}}'),
        ('{"execute": "migrate-set-capabilities"}',
         '{"error": {"class": "GenericError", "desc": "Parameter \'capabilities\' is missing"}}'),
        # migrate-set-capabilities checks every element's types, as QEMU names them.
        ('{"execute": "migrate-set-capabilities", "arguments": {"capabilities": '
         '[{"capability": "events", "state": []}]}}',
         '{"error": {"class": "GenericError", "desc": '
         '"Invalid parameter type for \'capabilities[0].state\', expected: boolean"}}'),
        ('{"execute": "migrate-set-capabilities", "arguments": {"capabilities": '
         '[{"capability": "events", "state": true}, {"capability": "events", "state": "yes"}]}}',
         '{"error": {"class": "GenericError", "desc": '
         '"Invalid parameter type for \'capabilities[1].state\', expected: boolean"}}'),
        ('{"execute": "migrate-set-capabilities", "arguments": {"capabilities": '
         '[{"capability": "events", "state": 5}]}}',
         '{"error": {"class": "GenericError", "desc": '
         '"Invalid parameter type for \'capabilities[0].state\', expected: boolean"}}'),
        ('{"execute": "migrate-set-capabilities", "arguments": {"capabilities": '
         '[{"capability": 7, "state": true}]}}',
         '{"error": {"class": "GenericError", "desc": '
         '"Invalid parameter type for \'capabilities[0].capability\', expected: string"}}'),
        ('{"execute": "migrate-set-capabilities", "arguments": {"capabilities": '
         '[{"capability": "events"}]}}',
         '{"error": {"class": "GenericError", "desc": '
         '"Parameter \'capabilities[0].state\' is missing"}}'),
        ('{"execute": "query-migrate-capabilities"}',
         '{"return": [{"capability": "events", "state": false}, '
         '{"capability": "return-path", "state": false}]}'),
        # Accepted variants: empty arguments, single-quoted strings.
        ('{"execute": "query-status", "arguments": {}, "id": "empty"}',
         '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": "empty"}'),
        ("{'execute': 'query-status', 'id': 'sq'}",
         '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": "sq"}'),
    ]
    for send, want in cases:
        c.send(send)
        expect_msg(c.recv(send), want, 'reply to %s' % send)
    # The VM was not touched by any of that, and the connection still works.
    m = c.execute('query-status', id='end')
    expect_msg(m, '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, '
               '"id": "end"}', 'query-status at the end')


@case('malformed-json')
@with_vm
def t_malformed(vm):
    """Each malformed JSON text gets exactly one GenericError "JSON parse
    error, ..." without id; the connection stays open and the next command is
    answered."""
    c = vm.connect().negotiate()
    bad = [
        ('{"execute" "query-status", "id": 1}', 'JSON parse error, missing : in object pair'),
        ('}', 'JSON parse error, expecting value'),
        ('{"execute": "query-status", "id": tru}', "JSON parse error, invalid keyword 'tru'"),
        ('{"execute": "query-status", "id": 1,}', None),
    ]
    for i, (text, desc) in enumerate(bad):
        c.send(text)
        m = c.recv('reply to malformed %r' % text)
        check('id' not in m.obj, 'parse error reply has no id', 'no id', m.raw)
        err = m.obj.get('error') or {}
        check(err.get('class') == 'GenericError' and
              str(err.get('desc', '')).startswith('JSON parse error, '),
              'parse error for %r' % text,
              '{"error": {"class": "GenericError", "desc": "JSON parse error, ..."}}', m.raw)
        check(list(m.obj.keys()) == ['error'] and list(err.keys()) == ['class', 'desc'],
              'parse error reply shape', '{"error": {"class", "desc"}}', m.raw)
        if desc is not None and OPTS.reference:
            check(err['desc'] == desc, 'QEMU desc for %r' % text, desc, err['desc'])
        m = c.execute('query-status', id='good%d' % i)
        expect_msg(m, '{"return": {"status": "prelaunch", "singlestep": false, '
                   '"running": false}, "id": "good%d"}' % i,
                   'good command after malformed %r (connection still usable, '
                   'no second error)' % text)
    c.expect_silence('after the last good command')


@case('hostile-json')
@with_vm
def t_hostile_json(vm):
    """Texts whose strings and comments json-glib reads otherwise than
    QEMU's lexer, with 200,000 '[' inside: one GenericError apiece (or the
    reply to the array they turn out to be), before negotiation as after, and
    the monitor lives on. qlite used to hand them to json-glib, whose
    recursion overflowed the monitor thread's stack."""
    deep = '[' * 200000
    cases = [
        ('[/*"*/' + deep + '"]', "JSON parse error, stray '/'"),
        ('["\\u1"", ' + deep + '"]', 'JSON parse error, invalid hex escape sequence in string'),
        ("['\\'," + deep + "']", 'QMP input must be a JSON object'),
    ]
    for negotiated in (False, True):
        c = vm.connect()
        c.greeting()
        if negotiated:
            c.send('{"execute": "qmp_capabilities"}')
            c.recv('qmp_capabilities reply')
        for text, desc in cases:
            what = '%r... (%s)' % (text[:10], 'negotiated' if negotiated else 'before negotiation')
            c.send(text)
            c.send('{"execute": "query-name", "id": "after"}')
            errors = []
            while True:
                m = c.recv('replies to %s' % what, timeout=30)
                if m.obj.get('id') == 'after':
                    break
                errors.append(m)
            expect_msg(m, '{"return": {}, "id": "after"}' if negotiated else
                       '{"id": "after", "error": {"class": "CommandNotFound", "desc": '
                       '"Expecting capabilities negotiation with \'qmp_capabilities\'"}}',
                       'the command after %s' % what)
            check(errors and all((e.obj.get('error') or {}).get('class') == 'GenericError'
                                 for e in errors), 'GenericError for %s' % what,
                  'GenericError', errors)
            if not OPTS.reference:
                check(len(errors) == 1 and errors[0].obj['error']['desc'] == desc,
                      'one error for %s' % what, desc, errors)
        c.close()
    check(vm.proc.poll() is None, 'the VMM still runs', 'running', vm.output())


@case('stream')
@with_vm
def t_stream(vm):
    """Input is a JSON stream: two and three commands in one write, one
    command split over several writes with pauses, any whitespace between;
    every reply in order and CRLF-terminated."""
    c = vm.connect().negotiate()
    c.send('{"execute": "query-name", "id": 1}{"execute": "query-kvm", "id": 2}')
    expect_msg(c.recv('first of two in one write'), '{"return": {}, "id": 1}', 'first of two')
    expect_msg(c.recv('second of two in one write'),
               '{"return": {"enabled": true, "present": true}, "id": 2}', 'second of two')
    c.send('\n{"execute": "query-name", "id": "a"}\r\n  {"execute": "x", "id": "b"}\n\t'
           '{"execute": "query-status", "id": "c"}\n')
    expect_msg(c.recv('1/3'), '{"return": {}, "id": "a"}', 'first of three')
    expect_msg(c.recv('2/3'), '{"id": "b", "error": {"class": "CommandNotFound", '
               '"desc": "The command x has not been found"}}', 'second of three')
    expect_msg(c.recv('3/3'), '{"return": {"status": "prelaunch", "singlestep": false, '
               '"running": false}, "id": "c"}', 'third of three')
    # Split over writes, cutting inside a key, a string value and a keyword.
    pieces = ['{"exe', 'cute": "query-st', 'atus", "id": [tr', 'ue, nu', 'll]', '}']
    for i, p in enumerate(pieces):
        c.send(p)
        if i < len(pieces) - 1:
            c.expect_silence('after piece %d of a split command' % (i + 1), 0.2)
    expect_msg(c.recv('split command'), '{"return": {"status": "prelaunch", "singlestep": false, '
               '"running": false}, "id": [true, null]}', 'split command')
    # One byte at a time.
    for ch in '{"execute": "query-name", "id": "bytes"}':
        c.send(ch)
        time.sleep(0.005)
    expect_msg(c.recv('command sent bytewise'), '{"return": {}, "id": "bytes"}', 'bytewise command')
    # The end of one command and the start of the next in the same write.
    c.send('{"execute": "query-name", "id": "p1"')
    c.expect_silence('before the closing brace', 0.2)
    c.send('}{"execute": "query-kvm", ')
    expect_msg(c.recv('p1'), '{"return": {}, "id": "p1"}', 'command completed by a later write')
    c.expect_silence('half of the next command', 0.2)
    c.send('"id": "p2"}')
    expect_msg(c.recv('p2'), '{"return": {"enabled": true, "present": true}, "id": "p2"}',
               'second command completed')
    c.expect_silence('at the end')


@case('queries')
@with_vm
def t_queries(vm):
    """query-version, query-status (prelaunch), query-name without -name,
    query-kvm, query-commands."""
    c = vm.connect().negotiate()
    m = c.execute('query-version')
    expect_msg(m, '{"return": {"qemu": {"micro": "<MICRO>", "minor": "<MINOR>", "major": '
               '"<MAJOR>"}, "package": "<PKG>"}}', 'query-version',
               lambda o: norm_version(o['return']))
    q = m.obj['return']['qemu']
    check((q['major'], q['minor']) >= (4, 2), 'query-version at least 4.2', '>= 4.2', q)
    expect_msg(c.execute('query-status'), '{"return": {"status": "prelaunch", '
               '"singlestep": false, "running": false}}', 'query-status with -S')
    expect_msg(c.execute('query-name'), '{"return": {}}', 'query-name without -name')
    expect_msg(c.execute('query-kvm'), '{"return": {"enabled": true, "present": true}}',
               'query-kvm')
    m = c.execute('query-commands')
    cmds = ok_return(m, 'query-commands')
    check(isinstance(cmds, list) and all(isinstance(x, dict) and list(x) == ['name'] and
                                         isinstance(x['name'], str) for x in cmds),
          'query-commands is a list of {"name": str}', '[{"name": ...}, ...]', m.raw[:200])
    names = [x['name'] for x in cmds]
    check(len(names) == len(set(names)), 'query-commands names are unique', 'unique', names)
    need = ['qmp_capabilities', 'query-version', 'query-commands', 'query-status', 'query-name',
            'query-kvm', 'query-cpus-fast', 'query-block', 'stop', 'cont', 'system_reset',
            'system_powerdown', 'quit', 'human-monitor-command']
    missing = [n for n in need if n not in names]
    check(not missing, 'query-commands lists the commands issue 5 requires', need,
          'missing %s' % missing)
    # Everything listed must be known and check its arguments: probe with an
    # argument no command takes, so nothing is executed (QEMU answers
    # "Parameter 'x-qmp-test-bogus' is unexpected", or "Parameter 'P' is
    # missing" first for commands with a required P).  quit is left out: its
    # argument check is in the errors case, and a VMM that got it wrong would
    # exit here.
    for n in names:
        if n in ('qmp_capabilities', 'quit'):
            continue
        m = c.execute(n, {'x-qmp-test-bogus': 1}, events=[])
        err = (m.obj.get('error') or {})
        check(err.get('class') == 'GenericError' and
              re.match(r"^Parameter '[^']+' is (unexpected|missing)$", err.get('desc', '')),
              'listed command %s is known and rejects an unknown argument' % n,
              '{"error": {"class": "GenericError", "desc": "Parameter \'x-qmp-test-bogus\' '
              'is unexpected"}}', m.raw)


@case('query-name')
def t_query_name():
    """query-name with -name NAME and with -name guest=NAME."""
    for extra, name in ((['-name', 'myvm'], 'myvm'), (['-name', 'guest=vm-2'], 'vm-2')):
        @with_vm
        def one(vm):
            c = vm.connect().negotiate()
            expect_msg(c.execute('query-name', id=1), '{"return": {"name": "%s"}, "id": 1}' % name,
                       'query-name with %s' % ' '.join(extra))
        one(extra)


@case('query-cpus-fast')
@with_vm
def t_cpus(vm):
    """query-cpus-fast: QEMU's shape; thread-id is a real thread of the VMM."""
    c = vm.connect().negotiate()
    m = c.execute('query-cpus-fast')
    cpus = ok_return(m, 'query-cpus-fast')
    check(isinstance(cpus, list) and len(cpus) == 1, 'one vCPU', 1, m.raw)
    tid = cpus[0].get('thread-id')
    check(type(tid) is int and os.path.exists('/proc/%d/task/%d' % (vm.proc.pid, tid)),
          'thread-id is a thread of the VMM process %d' % vm.proc.pid,
          'an entry of /proc/%d/task' % vm.proc.pid, tid)

    def norm(o):
        o['return'][0]['thread-id'] = '<TID>'
        o['return'][0]['qom-path'] = '<QOM>'
    expect_msg(m, '{"return": [{"thread-id": "<TID>", "props": {"core-id": 0, "thread-id": 0, '
               '"socket-id": 0}, "qom-path": "<QOM>", "cpu-index": 0, "target": "x86_64"}]}',
               'query-cpus-fast', norm)
    check(isinstance(cpus[0].get('qom-path'), str) and cpus[0]['qom-path'].startswith('/machine/'),
          'qom-path is a /machine/ path', '/machine/...', cpus[0].get('qom-path'))


# query-blockstats of one -blockdev disk before any I/O, recorded from QEMU 7.2
# (its member order is a hash table's: compared with sorted keys). The disk's
# counters are the device's; its file node reports no requests of its own.
def blockstats_reply(account):
    stats = {'%s_%s' % (k, f): 0 for k in ('rd', 'wr', 'unmap')
             for f in ('bytes', 'operations', 'total_time_ns', 'merged')}
    stats.update({'%s_%s_operations' % (p, k): 0 for p in ('failed', 'invalid')
                  for k in ('rd', 'wr', 'flush', 'unmap')})
    stats.update({'flush_operations': 0, 'flush_total_time_ns': 0, 'wr_highest_offset': 0,
                  'timed_stats': [], 'account_invalid': account, 'account_failed': account})
    return stats


@case('query-blockstats')
def t_blockstats():
    """query-blockstats and query-blockstats query-nodes of a -blockdev disk: QEMU's shapes."""
    image = tempfile.NamedTemporaryFile(prefix='qmp-test-disk-')
    image.truncate(1 << 20)
    extra = ['-M', 'pc',
             '-blockdev', '{"driver":"file","filename":"%s","node-name":"disk-storage"}' % image.name,
             '-blockdev', '{"node-name":"disk-format","driver":"raw","file":"disk-storage"}',
             '-device', '{"driver":"virtio-blk-pci","drive":"disk-format","id":"virtio-disk0"}']
    file_node = {'node-name': 'disk-storage', 'stats': blockstats_reply(False),
                 'driver-specific': {'driver': 'file', 'discard-nb-ok': 0,
                                     'discard-nb-failed': 0, 'discard-bytes-ok': 0}}

    @with_vm
    def run(vm):
        c = vm.connect().negotiate()
        for args, want in (
                (None, [{'device': '', 'qdev': '/machine/peripheral/virtio-disk0/virtio-backend',
                         'node-name': 'disk-format', 'stats': blockstats_reply(True),
                         'parent': file_node}]),
                ({'query-nodes': True}, [file_node, {'node-name': 'disk-format',
                                                     'stats': blockstats_reply(False),
                                                     'parent': file_node}])):
            got = ok_return(c.execute('query-blockstats', args), 'query-blockstats %s' % args)
            check(json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True),
                  'query-blockstats %s: QEMU 7.2\'s reply' % (args or ''),
                  json.dumps(want, sort_keys=True), json.dumps(got, sort_keys=True))
    try:
        run(extra)
    finally:
        image.close()


@case('query-stats')
@with_vm
def t_stats(vm):
    """query-stats and query-stats-schemas: KVM's own statistics of the VM and of
    each vCPU, described and filtered as QEMU's kvm provider does."""
    c = vm.connect().negotiate()
    schemas = ok_return(c.execute('query-stats-schemas'), 'query-stats-schemas')
    check([(x.get('provider'), x.get('target')) for x in schemas] == [('kvm', 'vcpu'),
                                                                       ('kvm', 'vm')],
          'query-stats-schemas: kvm, vcpu then vm', [('kvm', 'vcpu'), ('kvm', 'vm')],
          [(x.get('provider'), x.get('target')) for x in schemas])
    vcpu_schema = {x['name']: x for x in schemas[0]['stats']}
    check(vcpu_schema.get('exits') == {'name': 'exits', 'type': 'cumulative', 'exponent': 0},
          'the vCPU statistic exits: cumulative, no unit, no base (exponent 0)', 'exits',
          vcpu_schema.get('exits'))
    hist = [x for x in schemas[0]['stats'] if x['type'].endswith('histogram')]
    check(all(('bucket-size' in x) == (x['type'] == 'linear-histogram') for x in hist),
          'bucket-size for linear histograms only', 'bucket-size', hist[:2])
    got = ok_return(c.execute('query-stats', {'target': 'vcpu'}), 'query-stats vcpu')
    check(len(got) == 1 and got[0].get('qom-path') == '/machine/unattached/device[0]' and
          got[0].get('provider') == 'kvm',
          'one vCPU result with its QOM path', '/machine/unattached/device[0]', got)
    values = {x['name']: x['value'] for x in got[0]['stats']}
    check(set(values) == set(vcpu_schema), 'every described vCPU statistic has a value',
          sorted(vcpu_schema), sorted(values))
    check(all(isinstance(values[n], list) == vcpu_schema[n]['type'].endswith('histogram')
              for n in values), 'histograms are lists, the rest scalars', 'lists', values)
    names = ['exits', 'halt_exits']
    got = ok_return(c.execute('query-stats', {'target': 'vcpu', 'vcpus': [
        '/machine/unattached/device[0]'], 'providers': [{'provider': 'kvm', 'names': names}]}),
        'query-stats vcpu names')
    check(sorted(x['name'] for x in got[0]['stats']) == names and
          all(type(x['value']) is int for x in got[0]['stats']),
          'query-stats with names: those, as integers', names, got)
    got = ok_return(c.execute('query-stats', {'target': 'vcpu', 'vcpus': ['/machine/x']}),
                    'query-stats of no vCPU')
    check(got == [], 'query-stats of an unknown vCPU path: nothing', [], got)
    got = ok_return(c.execute('query-stats', {'target': 'vm'}), 'query-stats vm')
    check(len(got) == 1 and 'qom-path' not in got[0] and
          {x['name'] for x in got[0]['stats']} == {x['name'] for x in schemas[1]['stats']},
          'one VM result, without a QOM path, every VM statistic', 'vm', got)
    got = error_desc(c.execute('query-stats', {'target': 'vm', 'vcpus': []}))
    check(got == "Parameter 'vcpus' is unexpected", 'vcpus only for the vcpu target',
          "Parameter 'vcpus' is unexpected", got)


@case('return-path')
@with_vm
def t_return_path(vm):
    """The return-path capability: set and read back; a stream that has no way
    back (a pipe) fails the migration with the reason, and the VM stays as it was."""
    c = vm.connect().negotiate()
    ok_return(c.execute('migrate-set-capabilities', {'capabilities': [
        {'capability': 'return-path', 'state': True}]}), 'migrate-set-capabilities return-path')
    caps = ok_return(c.execute('query-migrate-capabilities'), 'query-migrate-capabilities')
    check({'capability': 'return-path', 'state': True} in caps, 'return-path is on',
          'return-path true', caps)
    if OPTS.reference:  # QEMU 7.2 opens a return path on a pipe and waits on it
        return
    r, w = os.pipe()
    reader = PipeEnd(r)
    ok_return(send_fd(c, w, {'execute': 'getfd', 'arguments': {'fdname': 'out'}}), 'getfd')
    os.close(w)
    ok_return(c.execute('migrate', {'uri': 'fd:out'}, events=[]), 'migrate fd:out')
    deadline = time.time() + 30
    info = {}
    while time.time() < deadline and info.get('status') not in ('completed', 'failed'):
        info = ok_return(c.execute('query-migrate', events=[]), 'query-migrate')
        time.sleep(0.05)
    check(info.get('status') == 'failed' and 'return-path' in info.get('error-desc', ''),
          'migrate to a pipe with return-path: failed, error-desc says why', 'failed', info)
    reader.join(10)
    expect_msg(c.execute('query-status'), '{"return": {"status": "prelaunch", '
               '"singlestep": false, "running": false}}', 'the VM is still in prelaunch')


@case('stop-cont-events')
@with_vm
def t_events(vm):
    """With -S: cont -> RESUME before the return; stop -> STOP before the
    return; a second stop -> no event; query-status follows."""
    c = vm.connect().negotiate()
    # stop while in prelaunch: no event, state stays prelaunch.
    c.send('{"execute": "stop", "id": "s0"}')
    expect_msg(c.recv('stop in prelaunch'), '{"return": {}, "id": "s0"}',
               'stop in prelaunch: return, no STOP event')
    expect_msg(c.execute('query-status'), '{"return": {"status": "prelaunch", '
               '"singlestep": false, "running": false}}', 'still prelaunch after stop')
    c.send('{"execute": "cont", "id": "c1"}')
    expect_msg(c.recv('first message after cont'), '{"timestamp": {"seconds": "<S>", '
               '"microseconds": "<US>"}, "event": "RESUME"}', 'RESUME event before the return')
    expect_msg(c.recv('cont return'), '{"return": {}, "id": "c1"}', 'cont return after RESUME')
    expect_msg(c.execute('query-status'), '{"return": {"status": "running", '
               '"singlestep": false, "running": true}}', 'query-status after cont')
    c.send('{"execute": "stop", "id": "s1"}')
    expect_msg(c.recv('first message after stop'), '{"timestamp": {"seconds": "<S>", '
               '"microseconds": "<US>"}, "event": "STOP"}', 'STOP event before the return')
    expect_msg(c.recv('stop return'), '{"return": {}, "id": "s1"}', 'stop return after STOP')
    c.send('{"execute": "stop", "id": "s2"}')
    expect_msg(c.recv('second stop'), '{"return": {}, "id": "s2"}',
               'second stop: return and no event')
    expect_msg(c.execute('query-status'), '{"return": {"status": "paused", '
               '"singlestep": false, "running": false}}', 'query-status after stop')
    c.send('{"execute": "cont"}')
    expect_msg(c.recv('RESUME again'), '{"timestamp": {"seconds": "<S>", '
               '"microseconds": "<US>"}, "event": "RESUME"}', 'RESUME from paused')
    expect_msg(c.recv('cont return'), '{"return": {}}', 'cont return')
    c.send('{"execute": "cont", "id": "c3"}')
    expect_msg(c.recv('cont while running'), '{"return": {}, "id": "c3"}',
               'cont while running: return and no event')
    c.send('{"execute": "stop"}')
    expect_msg(c.recv('STOP again'), '{"timestamp": {"seconds": "<S>", '
               '"microseconds": "<US>"}, "event": "STOP"}', 'STOP again')
    expect_msg(c.recv('stop return'), '{"return": {}}', 'stop return')
    c.expect_silence('at the end')


@case('reset-powerdown')
@with_vm
def t_reset_powerdown(vm):
    """system_reset -> RESET {"guest": false, "reason": "host-qmp-system-reset"}
    and system_powerdown -> POWERDOWN, each before its return (with -S the
    guest never runs, so nothing else follows)."""
    c = vm.connect().negotiate()
    c.send('{"execute": "system_reset", "id": "r"}')
    expect_msg(c.recv('RESET event'), '{"timestamp": {"seconds": "<S>", "microseconds": "<US>"}, '
               '"event": "RESET", "data": {"guest": false, "reason": "host-qmp-system-reset"}}',
               'RESET event before the return')
    expect_msg(c.recv('system_reset return'), '{"return": {}, "id": "r"}', 'system_reset return')
    expect_msg(c.execute('query-status'), '{"return": {"status": "prelaunch", '
               '"singlestep": false, "running": false}}', 'still prelaunch after system_reset')
    c.send('{"execute": "system_powerdown", "id": "p"}')
    expect_msg(c.recv('POWERDOWN event'), '{"timestamp": {"seconds": "<S>", "microseconds": '
               '"<US>"}, "event": "POWERDOWN"}', 'POWERDOWN event before the return')
    expect_msg(c.recv('system_powerdown return'), '{"return": {}, "id": "p"}',
               'system_powerdown return')
    c.expect_silence('after system_powerdown with vCPUs stopped')


@case('sigterm')
@with_vm
def t_sigterm(vm):
    """SIGTERM: SHUTDOWN {"guest": false, "reason": "host-signal"}, the
    connection closes, exit status 0."""
    c = vm.connect().negotiate()
    vm.proc.send_signal(15)
    expect_msg(c.recv('SHUTDOWN event'), '{"timestamp": {"seconds": "<S>", "microseconds": '
               '"<US>"}, "event": "SHUTDOWN", "data": {"guest": false, "reason": '
               '"host-signal"}}', 'SHUTDOWN(host-signal) event')
    c.expect_eof('after SIGTERM')
    rc = vm.wait_exit()
    check(rc == 0, 'VMM exit status after SIGTERM', 0, rc if rc is not None else 'still running')


@case('events-all-monitors')
def t_events_all():
    """Events go to every negotiated monitor (here one -qmp unix and one
    -chardev socket + -mon mode=control), not to one still negotiating; an
    event is not queued for a monitor that negotiates later."""
    @with_vm
    def run(vm):
        a = vm.connect().negotiate()
        b = vm.connect(vm.path('mon2.sock')).negotiate()
        n = vm.connect(vm.path('mon3.sock'))
        n.greeting()
        a.send('{"execute": "cont", "id": "a"}')
        expect_msg(a.recv('RESUME on A'), '{"timestamp": {"seconds": "<S>", "microseconds": '
                   '"<US>"}, "event": "RESUME"}', 'RESUME on the monitor that sent cont')
        expect_msg(a.recv('cont return on A'), '{"return": {}, "id": "a"}', 'cont return on A')
        expect_msg(b.recv('RESUME on B'), '{"timestamp": {"seconds": "<S>", "microseconds": '
                   '"<US>"}, "event": "RESUME"}', 'RESUME on the second monitor')
        n.expect_silence('monitor still negotiating gets no event')
        n.send('{"execute": "qmp_capabilities"}')
        expect_msg(n.recv('negotiation on the third monitor'), '{"return": {}}',
                   'third monitor negotiates; the earlier event is not queued for it')
        b.send('{"execute": "stop", "id": "b"}')
        for who, cl in (('B', b),):
            expect_msg(cl.recv('STOP on %s' % who), '{"timestamp": {"seconds": "<S>", '
                       '"microseconds": "<US>"}, "event": "STOP"}', 'STOP on %s' % who)
        expect_msg(b.recv('stop return on B'), '{"return": {}, "id": "b"}', 'stop return on B')
        for who, cl in (('A', a), ('third', n)):
            expect_msg(cl.recv('STOP on %s' % who), '{"timestamp": {"seconds": "<S>", '
                       '"microseconds": "<US>"}, "event": "STOP"}', 'STOP on %s' % who)
        for cl in (a, b, n):
            cl.expect_silence('after STOP', 0.2)
    run(['-chardev', 'socket,id=mon2,path=@DIR@/mon2.sock,server=on,wait=off',
         '-mon', 'chardev=mon2,mode=control',
         '-qmp', 'unix:@DIR@/mon3.sock,server=on,wait=off'])


@case('tcp-endpoint')
def t_tcp():
    """-qmp tcp:127.0.0.1:PORT,server=on,wait=off: same greeting and protocol
    over TCP."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()

    @with_vm
    def run(vm):
        deadline = time.time() + 10
        while True:
            t = socket.socket()
            try:
                t.connect(('127.0.0.1', port))
                break
            except ConnectionRefusedError:
                t.close()
                if vm.proc.poll() is not None or time.time() > deadline:
                    fail('cannot connect to tcp:127.0.0.1:%d' % port, 'a listener', vm.output())
                time.sleep(0.05)
        c = Client.__new__(Client)
        c.path, c.buf, c.eof, c.sock = 'tcp', b'', False, t
        vm.clients.append(c)
        c.negotiate()
        expect_msg(c.execute('query-status', id='tcp'), '{"return": {"status": "prelaunch", '
                   '"singlestep": false, "running": false}, "id": "tcp"}', 'query-status over TCP')
    run(['-qmp', 'tcp:127.0.0.1:%d,server=on,wait=off' % port])


@case('hmp')
@with_vm
def t_hmp(vm):
    """human-monitor-command: info status, info version, unknown commands,
    empty line, stop/cont through HMP (events before the return)."""
    c = vm.connect().negotiate()

    def hmp(line, id=None):
        return c.execute('human-monitor-command', {'command-line': line}, id=id, events=[])

    expect_msg(hmp('info status'), '{"return": "VM status: paused (prelaunch)\\r\\n"}',
               'info status in prelaunch')
    v = ok_return(c.execute('query-version'), 'query-version')
    want = '%d.%d.%d%s\r\n' % (v['qemu']['major'], v['qemu']['minor'], v['qemu']['micro'],
                               v['package'])
    m = hmp('info version', id='iv')
    check(m.obj == {'return': want, 'id': 'iv'},
          'info version is MAJOR.MINOR.MICRO immediately followed by package, CRLF',
          {'return': want, 'id': 'iv'}, m.raw)
    expect_msg(hmp('bogus'), '{"return": "unknown command: \'bogus\'\\r\\n"}', 'unknown HMP command')
    expect_msg(hmp('info bogus'), '{"return": "unknown command: \'info bogus\'\\r\\n"}',
               'unknown info subcommand')
    expect_msg(hmp(''), '{"return": ""}', 'empty HMP line')
    c.send('{"execute": "human-monitor-command", "arguments": {"command-line": "cont"}}')
    expect_msg(c.recv('HMP cont'), '{"timestamp": {"seconds": "<S>", "microseconds": "<US>"}, '
               '"event": "RESUME"}', 'HMP cont: RESUME first')
    expect_msg(c.recv('HMP cont return'), '{"return": ""}', 'HMP cont return')
    expect_msg(hmp('info status'), '{"return": "VM status: running\\r\\n"}', 'info status running')
    c.send('{"execute": "human-monitor-command", "arguments": {"command-line": "stop"}}')
    expect_msg(c.recv('HMP stop'), '{"timestamp": {"seconds": "<S>", "microseconds": "<US>"}, '
               '"event": "STOP"}', 'HMP stop: STOP first')
    expect_msg(c.recv('HMP stop return'), '{"return": ""}', 'HMP stop return')
    expect_msg(hmp('info status'), '{"return": "VM status: paused\\r\\n"}', 'info status paused')


@case('second-client')
@with_vm
def t_second_client(vm):
    """Clients of one monitor are served side by side: a client that
    connects and sends nothing, or one that negotiated and went idle, keeps
    nobody waiting. Each has its own negotiation; events go to every
    negotiated client. (QEMU serves one at a time; an idle client would
    block the monitor.)"""
    idle = vm.connect()  # connects and never says a word
    a = vm.connect().negotiate()
    b = vm.connect()
    g = b.recv('greeting of a third client while two are connected')
    check('QMP' in g.obj, 'greeting', '{"QMP": ...}', g.raw)
    b.send('{"execute": "query-name"}')
    expect_msg(b.recv('third client before negotiation'),
               '{"error": {"class": "CommandNotFound", "desc": "Expecting capabilities '
               'negotiation with \'qmp_capabilities\'"}}', 'each client starts in negotiation')
    b.send('{"execute": "qmp_capabilities"}')
    expect_msg(b.recv('qmp_capabilities of the third client'), '{"return": {}}',
               'third client negotiates while the others are connected')
    expect_msg(a.execute('query-name', id='a'), '{"return": {}, "id": "a"}', 'first client served')
    expect_msg(b.execute('query-name', id='b'), '{"return": {}, "id": "b"}', 'third client served')
    # An event reaches every negotiated client, and not the one that never negotiated.
    events = []
    expect_msg(b.execute('system_reset', id='r', events=events), '{"return": {}, "id": "r"}',
               'system_reset from the third client')
    reset = ('{"timestamp": {"seconds": "<S>", "microseconds": "<US>"}, "event": "RESET", '
             '"data": {"guest": false, "reason": "host-qmp-system-reset"}}')
    check(len(events) == 1, 'one event before the reply', 'RESET', events)
    expect_msg(events[0], reset, 'RESET at the third client')
    expect_msg(a.recv('RESET at the first client'), reset, 'RESET at the first client')
    g = idle.recv('greeting of the client that says nothing')
    check('QMP' in g.obj, 'greeting of the idle client', '{"QMP": ...}', g.raw)
    idle.expect_silence('no event before negotiation', 0.5)
    # A client that leaves does not disturb the others.
    a.close()
    expect_msg(b.execute('query-name', id='b2'), '{"return": {}, "id": "b2"}',
               'third client after the first left')


@case('slow-reader')
@with_vm
def t_slow_reader(vm):
    """A client that reads nothing while events pile up for it is
    disconnected once over 1 MiB waits for it (qlite's memory stays bounded);
    the other clients and the VM go on."""
    slow = vm.connect()
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.negotiate()
    busy = vm.connect().negotiate()
    batch = ''.join('{"execute": "system_reset", "id": %d}' % i for i in range(500))
    sent = 0
    while sent < 40000 and not vm.output().count(b'disconnected'):
        busy.send(batch)
        for i in range(500):
            m = busy.recv('reply %d of a batch of system_reset' % i)
            while 'event' in m.obj:
                m = busy.recv('reply %d of a batch of system_reset' % i)
        sent += 500
    check(b'left over 1024 KiB of output unread: disconnected' in vm.output(),
          'the slow client is disconnected (after %d events)' % sent,
          'qlite: a QMP client left over 1024 KiB of output unread: disconnected',
          vm.output())
    deadline = time.time() + 10
    while not slow.eof and time.time() < deadline:
        slow.buf = b''  # what was sent before the disconnection
        slow._fill(deadline - time.time())
    check(slow.eof, 'the slow client finds its connection closed once it reads', 'EOF',
          'still open')
    expect_msg(busy.execute('query-status', id='end'),
               '{"return": {"status": "prelaunch", "singlestep": false, "running": false}, '
               '"id": "end"}', 'the other client goes on')


def seccomp_modes(pid):
    """{thread name: the Seccomp field of its /proc status} for every thread of pid."""
    modes = {}
    for tid in os.listdir('/proc/%d/task' % pid):
        try:
            with open('/proc/%d/task/%s/status' % (pid, tid)) as f:
                status = dict(l.rstrip('\n').split(':\t', 1) for l in f if ':\t' in l)
        except FileNotFoundError:
            continue
        modes['%s/%s' % (status['Name'], tid)] = status['Seccomp']
    return modes


@case('sandbox')
def t_sandbox():
    """-sandbox on (the default): every thread runs under a seccomp filter,
    the monitor and the vCPU included; -sandbox off: none does."""
    if OPTS.reference:
        return
    for extra, want in (((), '2'), (('-sandbox', 'on'), '2'), (('-sandbox', 'off'), '0')):
        vm = VM(extra)
        try:
            c = vm.connect().negotiate()
            expect_msg(c.execute('query-name', id='up'), '{"return": {}, "id": "up"}',
                       'the monitor answers')
            # The monitor answers once its own filter is on; the main and vCPU
            # threads take theirs as they finish their set-up, a moment later.
            deadline = time.monotonic() + 10
            modes = seccomp_modes(vm.proc.pid)
            while time.monotonic() < deadline and not (
                    len(modes) >= 3 and all(m == want for m in modes.values())):
                time.sleep(0.1)
                modes = seccomp_modes(vm.proc.pid)
            check(len(modes) >= 3 and all(m == want for m in modes.values()),
                  'seccomp mode %s in every thread with %s' % (want, ' '.join(extra) or
                                                              'no -sandbox'),
                  'main, monitor, vCPU: %s' % want, modes)
        finally:
            vm.close()


@case('quit')
@with_vm
def t_quit(vm):
    """quit: SHUTDOWN {"guest": false, "reason": "host-qmp-quit"}, then the
    return, then the connection closes and the VMM exits with status 0."""
    c = vm.connect().negotiate()
    c.send('{"execute": "quit", "id": "q"}')
    expect_msg(c.recv('SHUTDOWN event'), '{"timestamp": {"seconds": "<S>", "microseconds": '
               '"<US>"}, "event": "SHUTDOWN", "data": {"guest": false, "reason": '
               '"host-qmp-quit"}}', 'SHUTDOWN event before the return')
    expect_msg(c.recv('quit return'), '{"return": {}, "id": "q"}', 'quit return')
    c.expect_eof('after quit')
    rc = vm.wait_exit()
    check(rc == 0, 'VMM exit status after quit', 0, rc if rc is not None else 'still running')


@case('quit-hmp')
@with_vm
def t_quit_hmp(vm):
    """quit through human-monitor-command, VM running: SHUTDOWN, then the
    connection closes and the VMM exits with status 0."""
    c = vm.connect().negotiate()
    c.send('{"execute": "cont"}')
    c.recv('RESUME')
    c.recv('cont return')
    c.send('{"execute": "human-monitor-command", "arguments": {"command-line": "quit"}}')
    expect_msg(c.recv('SHUTDOWN event'), '{"timestamp": {"seconds": "<S>", "microseconds": '
               '"<US>"}, "event": "SHUTDOWN", "data": {"guest": false, "reason": '
               '"host-qmp-quit"}}', 'SHUTDOWN event')
    # QEMU may or may not get the HMP return out before closing.
    raw = c.recv_raw(REPLY_TIMEOUT)
    if raw is not None:
        check(raw == b'{"return": ""}\r\n', 'HMP quit return (if any)', '{"return": ""}\\r\\n', raw)
    c.expect_eof('after HMP quit')
    rc = vm.wait_exit()
    check(rc == 0, 'VMM exit status after HMP quit', 0, rc if rc is not None else 'still running')


def send_fd(c, fd, cmd):
    """Sends a command with a descriptor attached (SCM_RIGHTS), as QMP clients do for getfd."""
    data = json.dumps(cmd).encode()
    c.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [fd]))])
    while True:
        m = c.recv('reply to %s' % cmd['execute'])
        if 'event' not in m.obj:
            return m


def error_desc(m):
    return m.obj.get('error', {}).get('desc')


class PipeEnd(threading.Thread):
    """Reads a pipe to its end (what a migration wrote), or writes data into one."""

    def __init__(self, fd, data=None):
        super().__init__(daemon=True)
        self.fd, self.data, self.got, self.eof = fd, data, b'', False
        self.start()

    def run(self):
        if self.data is not None:
            with open(self.fd, 'wb') as f:
                f.write(self.data)
            return
        with open(self.fd, 'rb') as f:
            while True:
                d = f.read(65536)
                if not d:
                    break
                self.got += d
        self.eof = True


def wait_migrated(c, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        st = ok_return(c.execute('query-migrate', events=[]), 'query-migrate').get('status')
        if st in ('completed', 'failed', 'cancelled'):
            check(st == 'completed', '%s: query-migrate says completed' % what, 'completed', st)
            return
        time.sleep(0.05)
    fail('%s: no end of the migration within 30 s' % what, 'completed', st)


@case('getfd')
@with_vm
def t_getfd(vm):
    """getfd/closefd with descriptors passed over the socket (QEMU's errors), migrate fd:NAME
    into a pipe, and the stream back through migrate-incoming fd:NAME and -incoming fd:N."""
    c = vm.connect()
    c.negotiate()
    want = {
        'getfd without a descriptor': (lambda: c.execute('getfd', {'fdname': 'x'}),
                                       'No file descriptor supplied via SCM_RIGHTS'),
        'closefd of an unknown name': (lambda: c.execute('closefd', {'fdname': 'x'}),
                                       "File descriptor named 'x' not found"),
        'migrate fd: of an unknown name': (lambda: c.execute('migrate', {'uri': 'fd:x'}),
                                           "File descriptor named 'x' has not been found"),
        'migrate fd:NUMBER (names only)': (lambda: c.execute('migrate', {'uri': 'fd:1'}),
                                           "File descriptor named '1' has not been found"),
        'migrate resume': (lambda: c.execute('migrate', {'uri': 'fd:x', 'resume': True}),
                           'Cannot resume if there is no paused migration'),
    }
    for what, (run, desc) in want.items():
        got = error_desc(run())
        check(got == desc, what, desc, got)
    if not OPTS.reference:  # QEMU 7.2 has block migration; qlite expects shared disks
        got = error_desc(c.execute('migrate', {'uri': 'fd:x', 'blk': True}))
        check('block migration' in (got or ''), 'migrate blk is refused', 'an error', got)
    r, w = os.pipe()
    got = error_desc(send_fd(c, w, {'execute': 'getfd', 'arguments': {'fdname': '9lives'}}))
    check(got == "Parameter 'fdname' expects a name not starting with a digit",
          'getfd: a name starting with a digit', 'QEMU\'s error', got)
    ok_return(send_fd(c, w, {'execute': 'getfd', 'arguments': {'fdname': 'out'}}), 'getfd')
    ok_return(c.execute('closefd', {'fdname': 'out'}), 'closefd')
    got = error_desc(c.execute('closefd', {'fdname': 'out'}))
    check(got == "File descriptor named 'out' not found", 'closefd twice', 'not found', got)
    # The same name twice: the second descriptor replaces the first.
    ok_return(send_fd(c, w, {'execute': 'getfd', 'arguments': {'fdname': 'out'}}), 'getfd')
    ok_return(send_fd(c, w, {'execute': 'getfd', 'arguments': {'fdname': 'out'}}), 'getfd again')
    os.close(w)
    reader = PipeEnd(r)
    ok_return(c.execute('migrate', {'uri': 'fd:out'}, events=[]), 'migrate fd:out')
    wait_migrated(c, 'migrate fd:out')
    reader.join(10)
    check(reader.eof, 'the VMM closes the descriptor when the stream is written',
          'EOF on the pipe', '%d bytes, no EOF' % len(reader.got))
    magic = b'QEVM' if OPTS.reference else b'QLITEMIG'
    check(reader.got.startswith(magic), 'the pipe carries a migration stream', magic,
          reader.got[:16])
    got = error_desc(c.execute('closefd', {'fdname': 'out'}))
    check(got == "File descriptor named 'out' not found", 'the migration took the descriptor',
          'not found', got)
    stream = reader.got

    dst = VM(['-incoming', 'defer'])
    try:
        d = dst.connect()
        d.negotiate()
        r2, w2 = os.pipe()
        ok_return(send_fd(d, r2, {'execute': 'getfd', 'arguments': {'fdname': 'in'}}),
                  'getfd on the destination')
        os.close(r2)
        writer = PipeEnd(w2, stream)
        ok_return(d.execute('migrate-incoming', {'uri': 'fd:in'}, events=[]),
                  'migrate-incoming fd:in')
        wait_migrated(d, 'migrate-incoming fd:in')
        writer.join(10)
    finally:
        dst.close()
    r3, w3 = os.pipe()
    dst = VM(['-incoming', 'fd:%d' % r3], pass_fds=(r3,))
    os.close(r3)
    try:
        PipeEnd(w3, stream)
        d = dst.connect()
        d.negotiate()
        wait_migrated(d, '-incoming fd:%d' % r3)
    finally:
        dst.close()


# ---------------------------------------------------------------------------

def main():
    global OPTS
    ap = argparse.ArgumentParser(description='QMP protocol tests (QEMU 7.2 as reference)')
    ap.add_argument('--vmm', help='VMM binary (default with --reference: qemu-system-x86_64)')
    ap.add_argument('--kernel', default=DEFAULT_KERNEL, help='kernel image (default: %(default)s)')
    ap.add_argument('--case', action='append', default=[], help='run only this case (repeatable)')
    ap.add_argument('--reference', action='store_true',
                    help='the VMM is QEMU: add -M microvm,acpi=off -cpu host,-arch-capabilities '
                    'and also check spellings only QEMU is held to')
    ap.add_argument('--ignore-key-order', action='store_true',
                    help='compare members regardless of order (default: QEMU\'s exact bytes)')
    ap.add_argument('--vmm-arg', action='append', default=[], help='extra VMM argument (repeatable)')
    ap.add_argument('--list', action='store_true', help='list the cases and exit')
    ap.add_argument('-v', '--verbose', action='store_true', help='show the command line and traffic')
    OPTS = ap.parse_args()

    if OPTS.list:
        for name, fn in CASES:
            print('%-20s %s' % (name, ' '.join((fn.__doc__ or '').split())))
        return 0
    if OPTS.vmm is None:
        if not OPTS.reference:
            ap.error('--vmm is required (or --reference for qemu-system-x86_64)')
        OPTS.vmm = 'qemu-system-x86_64'
    vmm = shutil.which(OPTS.vmm) or OPTS.vmm
    if not os.access(vmm, os.X_OK):
        ap.error('VMM %s not found or not executable' % OPTS.vmm)
    OPTS.vmm = vmm
    if not os.path.exists(OPTS.kernel):
        ap.error('kernel %s not found' % OPTS.kernel)
    if not os.access('/dev/kvm', os.R_OK | os.W_OK):
        if os.environ.get('CI') == 'true':
            print('Bail out! /dev/kvm not available (CI=true: not skipped)')
            return 1
        print('1..0 # SKIP /dev/kvm not available')
        return 77

    names = [n for n, _ in CASES]
    for n in OPTS.case:
        if n not in names:
            ap.error('unknown case %s (cases: %s)' % (n, ', '.join(names)))
    selected = [(n, f) for n, f in CASES if not OPTS.case or n in OPTS.case]

    print('1..%d' % len(selected))
    failed = 0
    for i, (name, fn) in enumerate(selected, 1):
        t0 = time.time()
        try:
            fn()
            print('ok %d - %s (%.1f s)' % (i, name, time.time() - t0))
        except CheckFailed as e:
            failed += 1
            print('not ok %d - %s' % (i, name))
            for line in str(e).split('\n'):
                print('# ' + line)
        except (OSError, ValueError) as e:
            failed += 1
            print('not ok %d - %s' % (i, name))
            print('# %s: %s' % (type(e).__name__, e))
        sys.stdout.flush()
    if failed:
        print('# %d of %d cases failed' % (failed, len(selected)))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
