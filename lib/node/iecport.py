"""IEC 62056-21 mode C on its own UART: the optical-head port of a utility
meter (config `iec.uart`: id, tx, rx; off while id is null).

A standard reader signs on at 300 Bd 7E1 ('/?addr!' CR LF). The node
answers after the reaction time with its identification, announcing
`iec.baud` (baud char Z). The reader acknowledges with ACK '0' Z' '0' CR LF
(normal protocol, readout, Z' <= Z); then both sides switch: the node
re-initialises the UART at Z' (7E1), waits DELAY_MS and sends the data block
(STX .. '!' CR LF ETX BCC, proto.iec framing). After the block has left the
UART, on a break (SOH 'B0' ETX) or after TIMEOUT_MS without progress the
UART goes back to 300 Bd 7E1. No ACK within ACK_WAIT_MS: the block is sent
at 300 Bd (as the console's fixed-rate readout does). Programming mode is
not offered (the ACK is ignored, the port returns to 300 Bd).

poll(now) -> next due (a node.sched component). The block is built once
per readout (allocates; not a sampling path) and written in pieces: a UART
with timeout=0 takes what fits its TX ring (rp2: a count or None)."""
from proto import iec as _iec

try:
    from micropython import const
except ImportError:
    def const(__x):
        return __x

INIT_BAUD = const(300)
REACTION_MS = const(200)        # request -> identification (tr, 200 ms class)
ACK_WAIT_MS = const(1500)       # identification -> ACK, else the block at 300 Bd
DELAY_MS = const(1000)          # ACK -> block at the new rate (the reader re-opens its port)
TIMEOUT_MS = const(3000)        # no progress at the new rate: back to 300 Bd
IDLE_MS = const(50)             # input poll at 300 Bd (30 bytes/s; the RX ring holds 8 s)
BUSY_MS = const(10)             # while sending
_MAXLINE = const(64)
BAUDS = (300, 600, 1200, 2400, 4800, 9600, 19200)   # mode C baud chars '0'..'6'

_IDLE = const(0)
_IDENT = const(1)       # reaction time running
_ACK = const(2)         # identification on the wire, waiting for the ACK
_DELAY = const(3)       # switched to the agreed rate, waiting before the block
_SEND = const(4)        # writing `out`
_DRAIN = const(5)       # written; waiting until it left the UART
_THEN_ACK = const(1)    # after the identification: wait for the ACK
_THEN_HOME = const(2)   # after the block: back to 300 Bd


def baud_char(baud):
    for i in range(len(BAUDS)):
        if BAUDS[i] == baud:
            return "0123456"[i]
    raise ValueError("no mode C baud char for %d" % baud)


class IecPort:
    def __init__(self, port, node, ticks, reinit, max_baud=9600, mfr="RBM"):
        """port: an open UART (300 Bd 7E1, timeout=0); reinit(port, baud,
        bits, parity, stop) re-programs it (node.board.uart_reinit)."""
        self.port = port
        self.node = node
        self.ticks = ticks
        self.reinit = reinit
        self.zmax = baud_char(max_baud)
        self.mfr = mfr
        self.baud = INIT_BAUD
        self.st = _IDLE
        self.t = 0                      # deadline of the current state
        self.then = 0
        self.rx = bytearray(_MAXLINE)
        self.n = 0
        self.buf = bytearray(32)
        self.out = b""                  # bytes being sent
        self.off = 0
        self.readouts = 0
        self.switches = 0               # rate changes programmed (both directions)
        self.breaks = 0
        self.timeouts = 0
        self.errors = 0

    # ---- UART rate ----------------------------------------------------------
    def _rate(self, baud):
        if baud != self.baud:
            self.reinit(self.port, baud, 7, "E", 1)
            self.baud = baud
            self.switches += 1

    def _home(self):
        """Back to the sign-on state: 300 Bd 7E1, nothing pending."""
        self.st = _IDLE
        self.out = b""
        self.n = 0
        self._rate(INIT_BAUD)

    # ---- input ----------------------------------------------------------------
    def _input(self, now):
        port = self.port
        rx = self.rx
        for _ in range(8):
            k = port.readinto(self.buf)
            if not k:
                return
            for i in range(k):
                c = self.buf[i] & 0x7F          # 7E1: drop a parity bit a driver may pass
                if c == 0x01:                   # SOH: a break 'B0' ETX bcc may follow
                    self.n = 0
                    rx[0] = 0x01
                    self.n = 1
                elif c == 0x03 and self.n >= 3 and rx[0] == 0x01 and rx[1] == 0x42:
                    self.breaks += 1
                    self._home()                # (its BCC byte is dropped with the next line's junk)
                elif c == 0x0A:
                    self._line(bytes(rx[:self.n]), now)
                    self.n = 0
                elif c != 0x0D:
                    if self.n < _MAXLINE:
                        rx[self.n] = c
                        self.n += 1
                    else:
                        self.n = 0              # garbage: resynchronise on the next LF
                        self.errors += 1

    def _line(self, line, now):
        k = line.find(b"/?")
        if k > 0:
            line = line[k:]                     # noise before a sign-on (a break's BCC, line glitches)
        if self.st == _ACK or (self.st == _DRAIN and self.then == _THEN_ACK):
            ack = _iec.parse_ack(line)
            if ack is not None:
                proto, z, mode = ack
                if proto == "0" and mode == "0" and "0" <= z <= self.zmax:
                    self._rate(BAUDS[ord(z) - 48])
                    self.st = _DELAY
                    self.t = self.ticks.ticks_add(now, DELAY_MS)
                else:
                    self._home()                # programming / unsupported rate
                return
        addr = _iec.parse_request(line)
        if addr is None:
            return
        if self.st not in (_IDLE, _IDENT, _ACK):
            return                              # busy with a readout
        if addr:
            try:
                if addr != self.node.node_id():
                    return                      # another meter on the bus
            except Exception:
                return
        self._rate(INIT_BAUD)
        self.st = _IDENT
        self.t = self.ticks.ticks_add(now, REACTION_MS)

    # ---- output -----------------------------------------------------------
    def _block(self):
        parts = []
        try:
            lines = list(_iec.data_lines(self.node.node_id(), self.node.channels()))
        except Exception:
            self.errors += 1
            lines = []
        _iec.write_block(parts.append, lines)
        return b"".join(parts)

    def _emit(self, data, then, now):
        self.out = data
        self.off = 0
        self.then = then
        self.st = _SEND
        self.t = self.ticks.ticks_add(now, TIMEOUT_MS)
        self._send(now)

    def _send(self, now):
        try:
            k = self.port.write(memoryview(self.out)[self.off:])
        except Exception:
            k = None
            self.errors += 1
        if k:
            self.off += k
            self.t = self.ticks.ticks_add(now, TIMEOUT_MS)
        if self.off >= len(self.out):
            self.st = _DRAIN
            # the whole text may still be queued: 10 bits a frame (7E1)
            self.t = self.ticks.ticks_add(now, 10000 * len(self.out) // self.baud + 20)

    def _drained(self):
        done = getattr(self.port, "txdone", None)
        if done is None:
            return False
        try:
            return bool(done())
        except Exception:
            return False

    def poll(self, now):
        tk = self.ticks
        self._input(now)
        st = self.st
        if st == _IDLE:
            return tk.ticks_add(now, IDLE_MS)
        late = tk.ticks_diff(now, self.t) >= 0
        if st == _IDENT:
            if late:
                try:
                    nid = self.node.node_id()
                except Exception:
                    nid = ""
                self._emit(_iec.ident_line(self.mfr, self.zmax, "-" + _iec.clean_id(nid, 15)), _THEN_ACK, now)
        elif st == _ACK or st == _DELAY:
            if late:                            # DELAY over, or no ACK: block at this rate
                self._emit(self._block(), _THEN_HOME, now)
        elif st == _SEND:
            self._send(now)
            if self.st == _SEND and tk.ticks_diff(now, self.t) >= 0:
                self.timeouts += 1              # the UART takes nothing: give up
                self._home()
        elif st == _DRAIN:
            if self._drained() or late:
                if self.then == _THEN_ACK:
                    self.st = _ACK
                    self.t = tk.ticks_add(now, ACK_WAIT_MS)
                else:
                    self.readouts += 1
                    self._home()
        return tk.ticks_add(now, IDLE_MS if self.st in (_IDLE, _ACK) else BUSY_MS)
