"""node.console timed_ms: what the asyncio waker needs to let an idle
console sleep until input (issue 9 "Measured": 20 ms wake-ups were most of
the idle CPU on the Pico). None = only input needs the console; otherwise
the ms until its own timers (TX queue, LIVE, held answers) are due."""
from clock import Ticks
import proto
from node.console import Console
from test_console import Rp2Port
from test_proto_fake import FakeNode


def _rig(ring=256):
    clk = Ticks()
    port = Rp2Port(ring=ring)
    con = Console(port, clk, 20, baud=115200)
    eng = proto.Engine(FakeNode(), con.write, clk, lambda n: b"\x07" * n, room=con.room, baud=115200)
    con.attach(eng)
    return clk, port, con


def test_idle_console_needs_no_timer():
    clk, port, con = _rig()
    due = con.poll(clk.ticks_ms())
    assert con.timed_ms is None
    # the virtual-time cadence is unchanged: due again after idle_ms
    assert clk.ticks_diff(due, clk.ticks_ms()) == 20
    port.rx += b"INFO\r\n"
    con.poll(clk.ticks_ms())
    port.shift(1 << 20)
    clk.advance(20)
    con.poll(clk.ticks_ms())
    assert con.pending() == 0 and con.timed_ms is None and b"OK" in port.wire


def test_queued_reply_keeps_the_console_timed():
    clk, port, con = _rig(ring=16)
    port.rx += b"HELP\r\n"
    con.poll(clk.ticks_ms())
    assert con.pending() > 0
    assert con.timed_ms is not None and 0 < con.timed_ms < 20


def test_live_stream_keeps_the_console_timed():
    clk, port, con = _rig(ring=1 << 20)
    port.rx += b"LIVE 1000\r\n"
    con.poll(clk.ticks_ms())
    clk.advance(20)
    con.poll(clk.ticks_ms())
    assert con.timed_ms is not None and 0 < con.timed_ms <= 1000
