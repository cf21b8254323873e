"""IEC 62056-21 mode C on its own UART (node.iecport): sign-on at 300 Bd 7E1,
switch to the acknowledged rate after the ACK, back to 300 Bd after the
readout, a break or a timeout. A UART stand-in records every (baud, bits,
parity, stop) the port programs, in order."""
from clock import Ticks
from node import iecport
from proto import iec

SIGN_ON = (300, 7, "E", 1)


class Uart:
    """Records init(); takes at most `ring` bytes per write (rp2 timeout=0)."""

    def __init__(self, ring=256):
        self.inits = [SIGN_ON]          # opened at 300 7E1 by node.board.uart_open
        self.rx = bytearray()
        self.tx = bytearray()
        self.tx_at = []                 # (baud, byte count) per write
        self.ring = ring
        self.queued = 0

    def init(self, baud, bits, parity, stop):
        self.inits.append((baud, bits, parity, stop))

    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        if not n:
            return None
        for i in range(n):
            buf[i] = self.rx[i]
        self.rx = self.rx[n:]
        return n

    def write(self, b):
        k = min(len(b), self.ring - self.queued)
        if k <= 0:
            return None
        self.tx += bytes(b[:k])
        self.tx_at.append((self.inits[-1][0], k))
        self.queued += k
        return k

    def drain(self):
        self.queued = 0

    def txdone(self):
        return self.queued == 0


def reinit(port, baud, bits, parity, stop):
    # node.board.uart_reinit's contract
    port.init(baud, bits, parity, stop)


class Node:
    def node_id(self):
        return "N0001"

    def channels(self):
        return [{"module": "0x50", "ch": k, "import_mwh": 1000 * k + 123456789, "export_mwh": 7 * k,
                 "p_mw": 1500000 - k} for k in range(6)]


def _rig(**kw):
    tk = Ticks(start=0)
    u = Uart(**kw)
    p = iecport.IecPort(u, Node(), tk, reinit)
    return tk, u, p


def _run(tk, u, p, ms, step=10):
    end = tk.ticks_ms() + ms
    while tk.ticks_diff(end, tk.ticks_ms()) > 0:
        p.poll(tk.ticks_ms())
        tk.advance(step)
        u.drain()                       # the line takes what was queued


def test_mode_c_switches_rate_and_returns():
    tk, u, p = _rig(ring=64)            # a block bigger than the ring: written in pieces
    u.rx += b"/?!\r\n"
    _run(tk, u, p, 150)
    assert u.tx == b""                  # reaction time not yet over
    _run(tk, u, p, 100)
    ident = bytes(u.tx)
    assert ident == b"/RBM5-N0001\r\n" and u.tx_at[-1][0] == 300
    _run(tk, u, p, 600)
    u.rx += b"\x06050\r\n"              # normal protocol, 9600 Bd, readout
    _run(tk, u, p, 20)
    assert u.inits == [SIGN_ON, (9600, 7, "E", 1)]
    _run(tk, u, p, 2000)
    block = bytes(u.tx[len(ident):])
    assert block[:1] == iec.STX and block[-2:-1] == iec.ETX
    assert iec.bcc(block[1:-1]) == block[-1]
    assert b"1-6:1.8.0(000123.461789*kWh)" in block
    assert all(b == 9600 for b, _ in u.tx_at[1:]) and len(u.tx_at) > 3
    # after the readout: back to the sign-on rate, ready for the next one
    assert u.inits == [SIGN_ON, (9600, 7, "E", 1), SIGN_ON] and p.readouts == 1
    u.rx += b"/?N0001!\r\n"
    _run(tk, u, p, 1000)
    u.rx += b"\x06030\r\n"              # 2400 Bd this time
    _run(tk, u, p, 3000)
    assert u.inits[3:] == [(2400, 7, "E", 1), SIGN_ON] and p.readouts == 2


def test_other_address_silent_and_no_ack_means_300_bd():
    tk, u, p = _rig()
    u.rx += b"/?OTHER!\r\n"
    _run(tk, u, p, 2000)
    assert u.tx == b"" and u.inits == [SIGN_ON]
    u.rx += b"/?!\r\n"
    _run(tk, u, p, 5000)                # no ACK: the block at 300 Bd
    assert u.tx.startswith(b"/RBM5-N0001\r\n\x02") and u.inits == [SIGN_ON]
    assert p.readouts == 1


def test_break_and_timeout_return_to_300():
    tk, u, p = _rig()
    u.rx += b"/?!\r\n"
    _run(tk, u, p, 1200)
    u.rx += b"\x06060\r\n"              # 19200 offered by the reader, above our 9600: refused
    _run(tk, u, p, 50)
    assert u.inits == [SIGN_ON]
    u.rx += b"/?!\r\n"
    _run(tk, u, p, 1200)
    u.rx += b"\x06040\r\n"              # 4800
    _run(tk, u, p, 100)
    u.rx += b"\x01B0\x03q"              # break during the delay
    _run(tk, u, p, 100)
    assert u.inits == [SIGN_ON, (4800, 7, "E", 1), SIGN_ON] and p.breaks == 1
    _run(tk, u, p, 2000)
    assert p.readouts == 0              # the break cancelled the readout
    # a UART that takes nothing: timeout, back to 300
    u.rx += b"/?!\r\n"
    _run(tk, u, p, 1200)
    u.rx += b"\x06050\r\n"
    _run(tk, u, p, 20)
    u.ring = 0
    _run(tk, u, p, iecport.DELAY_MS + iecport.TIMEOUT_MS + 100)
    assert p.timeouts == 1 and u.inits[-1] == SIGN_ON and u.inits[-2] == (9600, 7, "E", 1)


def test_programming_mode_not_offered():
    tk, u, p = _rig()
    u.rx += b"/?!\r\n"
    _run(tk, u, p, 1200)
    u.rx += b"\x06051\r\n"              # mode 1: programming
    _run(tk, u, p, 3000)
    assert u.inits == [SIGN_ON] and p.readouts == 0
    assert u.tx == b"/RBM5-N0001\r\n"
