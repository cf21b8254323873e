"""node.console: the non-blocking bounded TX queue (issue 9 item 4) and the
reply budget (ERR 503 busy), with port stand-ins that behave like the real
ports: rp2 (timeout=0: partial counts, None when the ring is full), ESP32
(write would block: only written when txdone()), and a failing port."""
import mptest
from clock import Ticks
import proto
from node.console import Console, TX_CAP
from test_proto_fake import FakeNode, SECRET


class Rp2Port:
    """UART(timeout=0) on rp2: takes what fits its ring, None when full."""

    def __init__(self, ring=256):
        self.ring = ring
        self.fill = 0
        self.wire = bytearray()
        self.rx = bytearray()
        self.writes = 0

    def write(self, b):
        self.writes += 1
        n = min(len(b), self.ring - self.fill)
        if n <= 0:
            return None
        self.wire += bytes(b[:n])
        self.fill += n
        return n

    def shift(self, n):                 # the line sends n bytes
        self.fill = max(0, self.fill - n)

    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        if not n:
            return None
        for i in range(n):
            buf[i] = self.rx[i]
        self.rx = self.rx[n:]
        return n


class Esp32Port(Rp2Port):
    """UART on ESP32: write() blocks until all is queued; this stand-in fails
    the test instead of blocking, so the queue must ask txdone() first."""

    def __init__(self, fifo=128):
        Rp2Port.__init__(self, fifo)

    def txdone(self):
        return self.fill == 0

    def write(self, b):
        assert len(b) <= self.ring - self.fill, "ESP32 write would block"
        return Rp2Port.write(self, b)


def _rig(port, cap=TX_CAP, baud=115200):
    clk = Ticks()
    con = Console(port, clk, 20, baud=baud, tx_cap=cap)
    node = FakeNode()
    eng = proto.Engine(node, con.write, clk, lambda n: b"\x07" * n, room=con.room, baud=baud)
    con.attach(eng)
    return clk, con, eng, node


def _run(clk, con, port, polls, ms=20, per_poll=None):
    for _ in range(polls):
        con.poll(clk.ticks_ms())
        clk.advance(ms)
        port.shift(per_poll if per_poll is not None else port.ring)


def test_rp2_partial_and_none_writes_lose_nothing():
    port = Rp2Port(ring=64)
    clk, con, eng, node = _rig(port)
    port.rx += b"HELP\r\nREAD\r\nCONFIG\r\n"
    want_len = None
    con.poll(clk.ticks_ms())           # the replies are queued, a first bit written
    assert con.pending() > 0 and len(port.wire) == 64
    _run(clk, con, port, 200, per_poll=40)
    assert con.pending() == 0
    text = bytes(port.wire).decode()
    assert text.count("\r\nOK\r\n") == 3 and text.startswith("HELP [cmd]\r\n")
    assert "CH module=0x50 ch=0 import_kwh=123.456789" in text
    assert con.tx_stalls > 0 and con.tx_bytes == len(port.wire)
    # in order and complete: the same bytes as an unbounded engine writes
    out = []
    ref = proto.Engine(FakeNode(), out.append, Ticks(), lambda n: b"\x07" * n)
    ref.feed(b"HELP\r\nREAD\r\nCONFIG\r\n", 0)
    assert bytes(port.wire) == b"".join(out)


def test_esp32_written_only_when_idle_and_in_fifo_chunks():
    port = Esp32Port(fifo=128)
    clk, con, eng, node = _rig(port)
    port.rx += b"HELP\r\n"
    _run(clk, con, port, 100, per_poll=0)          # the transmitter never finishes
    # at most one FIFO's worth (whole lines), then nothing until the transmitter is idle
    assert 100 < len(port.wire) <= 128 and bytes(port.wire).endswith(b"\r\n")
    _run(clk, con, port, 100)
    assert con.pending() == 0 and bytes(port.wire).endswith(b"OK\r\n")


def test_port_errors_keep_the_bytes():
    class Flaky(Rp2Port):
        def write(self, b):
            self.writes += 1
            if self.writes % 3:
                raise OSError(11)
            return Rp2Port.write(self, b)
    port = Flaky()
    clk, con, eng, node = _rig(port)
    port.rx += b"READ\n"
    _run(clk, con, port, 100)
    assert con.tx_errors > 0 and bytes(port.wire).endswith(b"OK\r\n")
    assert bytes(port.wire).count(b"CH module=") == 3


def test_full_queue_answers_busy_never_truncates():
    port = Rp2Port(ring=0)                          # a reader that takes nothing
    clk, con, eng, node = _rig(port, cap=600)
    port.rx += b"READ\r\n" * 10
    con.poll(clk.ticks_ms())
    q = b"".join(con._q)
    assert q.count(b"ERR 503 busy\r\n") >= 1 and eng.busy >= 1
    # every reply in the queue is whole: READ's three CH lines and OK, or one ERR 503
    parts = q.split(b"OK\r\n")
    for p in parts[:-1]:
        p = p.replace(b"ERR 503 busy\r\n", b"")
        assert p.count(b"CH module=") == 3, p
    assert con.pending() <= 600 + 20
    # a flood while nobody drains: the queue stays bounded (cap + one status line)
    for _ in range(50):
        port.rx += b"x\r\nECHO ON\r\n"
        con.poll(clk.ticks_ms())
    assert con.pending() <= 600 + 20
    # a signed mutation does not run when its reply could not be queued
    assert eng.room() < 256


def test_largest_replies_fit_the_queue():
    """The reply bound: READ (JSON) and CONFIG with 8 three-channel modules
    fit TX_CAP, so they are always sent whole."""
    class Big(FakeNode):
        def channels(self):
            out = []
            for m in range(8):
                for ch in range(3):
                    out.append({"module": "0x%02x" % (0x50 + m), "ch": ch, "import_mwh": 10 ** 15 + 123456,
                                "export_mwh": 10 ** 15 + 654321, "gap_ms": 10 ** 9, "p_mw": -123456789,
                                "u_v": 230.5, "i_a": 16.25, "pf": -0.987, "enabled": True})
            return out

        def get_config(self):
            cfg = {}
            for k in range(30):
                cfg["some.config.key%d" % k] = "x" * 20
            for m in range(8):
                cfg["modules.%d.addr" % m] = 80 + m
                cfg["modules.%d.label" % m] = "12345678"
                for ch in range(3):
                    for k in ("invert", "disable", "noload_w"):
                        cfg["modules.%d.ch.%d.%s" % (m, ch, k)] = 1000
            return cfg
    out = []
    e = proto.Engine(Big(), out.append, Ticks(), lambda n: b"\x07" * n)
    for cmd in (b"READ\n", b"CONFIG\n", b"HELP\n", b"STATUS\n", b"INFO\n"):
        for mode in (b"JSON OFF\n", b"JSON ON\n"):
            e.feed(mode, 0)
            del out[:]
            e.feed(cmd, 0)
            n = sum(len(b) for b in out)
            assert n <= TX_CAP, (cmd, mode, n)


def test_live_skipped_not_queued_without_room():
    port = Rp2Port(ring=0)
    clk, con, eng, node = _rig(port, cap=400)
    port.rx += b"LIVE 200\r\n"
    for _ in range(20):
        con.poll(clk.ticks_ms())
        clk.advance(200)
    assert eng.live_skipped > 0 and con.pending() <= 400


def test_poll_comes_back_sooner_while_bytes_wait():
    port = Rp2Port(ring=16)
    clk, con, eng, node = _rig(port)
    port.rx += b"HELP\r\n"
    due = con.poll(clk.ticks_ms())
    assert 0 < clk.ticks_diff(due, clk.ticks_ms()) < 20


def test_flush_drains_before_reset():
    port = Rp2Port(ring=1 << 20)
    clk, con, eng, node = _rig(port)
    con.write(b"x" * 3000)
    con.flush(100)
    assert con.pending() == 0 and len(port.wire) == 3000


def test_uart_break_resets_the_session():
    class BreakPort(Rp2Port):
        IRQ_BREAK = 512

        def irq(self, handler=None, trigger=0):
            assert trigger == self.IRQ_BREAK
            self.handler = handler
    port = BreakPort(ring=1 << 20)
    clk, con, eng, node = _rig(port)
    port.rx += b"AUTH\r\n"
    con.poll(clk.ticks_ms())
    nonce = bytes(port.wire).split(b"=")[1].split(b"\r")[0].decode()
    port.rx += ("AUTH " + proto.auth.response(SECRET, "N0001", nonce) + "\r\n").encode()
    con.poll(clk.ticks_ms())
    assert eng.authenticated
    port.rx += b"JSON ON\r\nREA"
    con.poll(clk.ticks_ms())
    port.handler(port)                       # the line is held low: a break
    port.rx += b"D\r\n"
    con.poll(clk.ticks_ms())
    assert not eng.authenticated and con.breaks == 1 and not eng.json
    assert bytes(port.wire).endswith(b"ERR 404 unknown command, try HELP\r\n")   # "D": the partial line was dropped
