"""End to end over a pseudo-terminal: the engine runs on the MicroPython unix
port (select.poll loop, time.ticks_ms), the host talks to it with pyserial and
with the PyPI IEC 62056-21 client's SerialTransport (real port reopen timing)."""
import os
import select
import subprocess
import sys
import threading
import time
import tty

import pytest
import serial
from iec62056_21.client import Iec6205621Client

from proto import crc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import runtimes  # noqa: E402

CHILD = r"""
import sys, select, termios, time
import proto
from test_proto_fake import FakeNode
f = open(sys.argv[1], "r+b")
termios.setraw(f.fileno())
p = select.poll()
p.register(f, select.POLLIN)
eng = proto.Engine(FakeNode(), f.write, time, lambda n: b"\x5a" * n)
buf = bytearray(64)
mv = memoryview(buf)
print("READY")
while True:
    wait = eng.poll(time.ticks_ms())
    n = 0
    # the unix port's readinto() blocks until the buffer is full: take one
    # byte per readable poll (the tty is not non-blocking)
    while n < len(buf) and p.poll(0 if n else (5 if wait is None or wait > 5 else wait)):
        if not f.readinto(mv[n:n + 1]):
            break
        n += 1
    if n:
        eng.feed(mv[:n], time.ticks_ms())
"""


class _Cable:
    """Two pty pairs bridged by a thread (a null-modem cable with two paths)."""

    def __init__(self):
        self.ma, self.sa = os.openpty()
        self.mb, self.sb = os.openpty()
        tty.setraw(self.sa)
        tty.setraw(self.sb)
        self.stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        pairs = {self.ma: self.mb, self.mb: self.ma}
        while not self.stop:
            r, _, _ = select.select(list(pairs), [], [], 0.05)
            for fd in r:
                try:
                    os.write(pairs[fd], os.read(fd, 4096))
                except OSError:
                    return

    def close(self):
        self.stop = True
        self.t.join()
        for fd in (self.ma, self.sa, self.mb, self.sb):
            os.close(fd)


@pytest.fixture
def node_on_pty():
    cable = _Cable()
    env = dict(os.environ, MICROPYPATH=runtimes.MICROPYPATH)
    child = subprocess.Popen([runtimes.MICROPYTHON, "-c", CHILD, os.ttyname(cable.sb)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "READY"
    try:
        yield os.ttyname(cable.sa)
    finally:
        child.kill()
        _, err = child.communicate()
        cable.close()
        if err.strip():
            print("child stderr:", err[-3000:])


def _reply(s):
    lines = []
    while True:
        l = s.readline()
        assert l.endswith(b"\r\n"), (l, lines)
        l = l[:-2]
        lines.append(l)
        if l.startswith((b"OK", b"ERR ", b'{"ok"')):
            return lines


def test_console_and_iec_readout_over_pty(node_on_pty):
    s = serial.Serial(node_on_pty, 115200, timeout=3)
    s.write(b"INFO\r\n")
    r = _reply(s)
    assert r[0] == b"NODE fw=0.3.1 id=N0001 uptime_s=42" and r[-1] == b"OK"
    s.write(b"PRESET 0x50 0 1 1\r\nJSON ON\nREAD 0x50 0\n")
    assert _reply(s) == [b"ERR 401 auth required"]
    assert _reply(s)[-1].startswith(b'{"ok":true}')
    r = _reply(s)
    assert all(crc.verify(l) is not None for l in r)
    assert b'"import_mwh":123456789' in r[0]
    s.write(b"JSON OFF\n")
    _reply(s)
    s.close()
    client = Iec6205621Client.with_serial_transport(node_on_pty)
    client.connect()
    try:
        t0 = time.monotonic()
        ans = client.standard_readout()
        took = time.monotonic() - t0
    finally:
        client.disconnect()
    vals = {d.address: (d.value, d.unit) for d in ans.data}
    assert client.manufacturer_id == "RBM" and client.identification == "N0001"
    assert vals["1-1:1.8.0"] == ("000123.456789", "kWh")
    assert vals["1-2:16.7.0"] == ("-000.800", "kW")
    assert took < 3.0


def test_signed_session_over_pty_on_the_unix_port(node_on_pty):
    """rbmeter's client (CPython hmac) against the engine's HMAC on MicroPython:
    login, signed PRESET/SAVE, replay refused, LOGOUT."""
    from rbmeter import client as rbc
    from test_proto_fake import SECRET
    sent = []

    class Tap:
        def __init__(self):
            self.s = serial.Serial(node_on_pty, 115200, timeout=0.05)

        def write(self, b):
            sent.append(bytes(b))
            return self.s.write(b)

        def __getattr__(self, k):
            return getattr(self.s, k)
    tap = Tap()
    c = rbc.Client(tap, timeout=3.0)
    assert c.auth(SECRET) == "authenticated"
    c.preset("0x50", 1, 4000000, 5000000)
    assert [x for x in c.channels() if x["ch"] == 1 and x["module"] == "0x50"][0]["import_mwh"] == 4000000
    assert c.save() is None
    line = [l for l in sent if l.startswith(b"PRESET")][-1]
    r = c.command(line.strip().decode().rsplit("*", 1)[0], check=False)      # replayed as sent
    assert not r.ok and r.code == 401
    c.logout()
    with pytest.raises(rbc.AuthError):
        c.save()
    tap.s.close()
