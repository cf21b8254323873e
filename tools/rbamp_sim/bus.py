"""A simulated I2C bus with the machine.I2C method set."""
import sys

from . import regs as R
from .clocks import VirtualClock
from .faults import Faults, Rng, thresh, esp32_nack_rate

ENODEV = 19
EIO = 5
ETIMEDOUT = 110
_MP = sys.implementation.name == "micropython"
_NAMES = {ENODEV: "ENODEV", EIO: "EIO", ETIMEDOUT: "ETIMEDOUT"}
GHOST = b"\x3c\x2f\xfb\x3f"


def _oserror(code):
    # MicroPython's machine.I2C raises OSError(code); on CPython the 2-arg
    # form is needed for e.errno to be set (args[0] is the code on both)
    if _MP:
        return OSError(code)
    return OSError(code, _NAMES[code])


class Bus:
    def __init__(self, modules=(), clock=None, faults=None, freq=50000, tx_time=False):
        self.clock = clock if clock is not None else VirtualClock()
        self.tx_time = tx_time      # True: successful transactions advance the (virtual) clock
        self.bus_us = 0             # wire time of successful transactions at `freq`
        self._us_rem = 0
        self.faults = faults if faults is not None else Faults()
        self.freq = freq
        self.modules = []
        self.between_bytes = None   # test hook: fn(i) before byte i (i >= 1) of a read
        self.n_tx = 0
        self.n_err = 0
        self.n_bytes = 0
        f = self.faults
        self._rng = Rng(f.seed)
        self._th_to = thresh(f.timeout_rate)
        self._th_eio = self._th_to + thresh(f.eio_rate)
        self._th_nack = self._th_eio + thresh(f.nack_rate)
        self._th_rnack = thresh(esp32_nack_rate(freq)) if f.host == "esp32" else 0
        self._th_emi = thresh(f.emi_rate)
        self._th_ghost = thresh(f.ghost_rate)
        self._ghost_armed = False
        self._quiet = not (self._th_nack or self._th_rnack or f.emi or f.wedge_at)
        for m in modules:
            self.attach(m)

    def attach(self, mod):
        """Connect (power up) a module on this bus."""
        mod._attach(self, self.clock, self.faults)
        self.modules.append(mod)
        return mod

    # ---- transaction core ------------------------------------------------
    def _fail(self, code):
        self.n_err += 1
        if code == ENODEV:
            self._ghost_armed = True
        raise _oserror(code)

    def _faults(self, t, read, addr=-1):
        f = self.faults
        if f.wedge_at is not None and f.wedge_at[0] <= t < f.wedge_at[1]:
            self._fail(ETIMEDOUT)
        if self._th_nack:
            u = self._rng.u32()
            if u < self._th_nack:
                if self._th_to <= u < self._th_eio:
                    self._slave_error(addr, t)
                self._fail(ETIMEDOUT if u < self._th_to else (EIO if u < self._th_eio else ENODEV))
        if read and self._th_rnack and self._rng.u32() < self._th_rnack:
            self._fail(ENODEV)
        for a, b in f.emi:
            if a <= t < b and self._rng.u32() < self._th_emi:
                self._fail(ENODEV)

    def _wire(self, nbytes):
        # 9 clocks per byte (8 data + ACK) plus START/Sr/STOP
        us = (nbytes * 9 + 3) * 1000000 // self.freq
        self.bus_us += us
        if self.tx_time:
            r = self._us_rem + us
            if r >= 1000:
                self.clock.advance(r // 1000)
                r %= 1000
            self._us_rem = r

    def _slave_error(self, addr, t):
        # a bus error is seen by the addressed module too: I2C_ERR_COUNT (0x4B)
        for m in self.modules:
            if m.acks(t) and m.addr == addr:
                c = m.mem[R.I2C_ERR_COUNT] | m.mem[R.I2C_ERR_COUNT + 1] << 8
                if c < 0xFFFF:
                    c += 1
                    m.mem[R.I2C_ERR_COUNT] = c & 0xFF
                    m.mem[R.I2C_ERR_COUNT + 1] = c >> 8

    def _target(self, addr, read):
        """Start a transaction: faults, then the ACKing module (or ENODEV)."""
        self.n_tx += 1
        t = self.clock.now_ms()
        if not self._quiet:
            self._faults(t, read, addr)
        found = None
        for m in self.modules:
            # acks() catches up first: a reboot may just have moved the address
            if m.acks(t) and m.addr == addr:
                if found is None:
                    found = m
                else:  # two modules answer one address: open-drain wired-AND
                    return _Pair(found, m, t)
        if found is None:
            self._fail(ENODEV)
        return found

    def _ghost(self, buf):
        if self._ghost_armed:
            self._ghost_armed = False
            if self._th_ghost and self._rng.u32() < self._th_ghost:
                for i in range(len(buf)):
                    buf[i] = GHOST[i & 3]
                return True
        return False

    def _set_pointer(self, m, memaddr, addrsize, t):
        if addrsize == 16:  # module sees pointer = high byte, data = low byte
            m.write((memaddr >> 8) & 0xFF, memaddr & 0xFF, t)
            m.ptr = (memaddr >> 8) & 0xFF
        else:
            m.ptr = memaddr & 0xFF

    # ---- machine.I2C surface ---------------------------------------------
    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        m = self._target(addr, True)
        if addrsize != 8:
            self._set_pointer(m, memaddr, addrsize, self.clock.now_ms())
        else:
            m.ptr = memaddr & 0xFF
        self.n_bytes += len(buf)
        if not (self._ghost_armed and self._ghost(buf)):
            m.read_into(buf, self.between_bytes)
        self._wire(len(buf) + 2 + (addrsize >> 3))

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf, addrsize=addrsize)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        if addr == 0:
            self._general_call(bytes([memaddr & 0xFF]) + bytes(buf))
            return
        m = self._target(addr, False)
        t = self.clock.now_ms()
        if addrsize != 8:
            self._set_pointer(m, memaddr, addrsize, t)
            reg = (memaddr >> 8) & 0xFF
        else:
            reg = memaddr & 0xFF
        self.n_bytes += len(buf)
        if len(buf):
            m.write(reg, buf[0], t)  # writes do not auto-increment
        else:
            m.ptr = reg
        self._wire(len(buf) + 1 + (addrsize >> 3))

    def readfrom_into(self, addr, buf, stop=True):
        m = self._target(addr, True)
        self.n_bytes += len(buf)
        if not (self._ghost_armed and self._ghost(buf)):
            m.read_into(buf, self.between_bytes)
        self._wire(len(buf) + 1)

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf, stop)
        return bytes(buf)

    def writeto(self, addr, buf, stop=True):
        """Returns the number of data bytes ACKed, like machine.I2C."""
        if addr == 0:
            return self._general_call(bytes(buf))
        m = self._target(addr, False)
        n = len(buf)
        self.n_bytes += n
        if n:
            m.ptr = buf[0]
            if n > 1:
                m.write(buf[0], buf[1], self.clock.now_ms())
        self._wire(n + 1)
        return n

    def writevto(self, addr, vector, stop=True):
        data = b""
        for b in vector:
            data += bytes(b)
        return self.writeto(addr, data, stop)

    def scan(self):
        """Addresses 0x08..0x77 that ACK now (injected NACKs can hide one)."""
        out = []
        t = self.clock.now_ms()
        for m in self.modules:
            m.sync(t)
        for a in range(0x08, 0x78):
            for m in self.modules:
                if m.addr == a:
                    try:
                        self._target(a, False)
                    except OSError:
                        pass
                    else:
                        out.append(a)
                    break
        return out

    def _general_call(self, frame):
        """Address 0x00: A5 27 group tick_lo tick_hi latches GC-enabled modules."""
        self.n_tx += 1
        t = self.clock.now_ms()
        if not self._quiet:
            self._faults(t, False)
        listeners = []
        for m in self.modules:
            if m.acks(t) and m.gc_active:
                listeners.append(m)
        if not listeners:
            self._fail(ENODEV)
        self.n_bytes += len(frame)
        if len(frame) == 5 and frame[0] == R.GC_FRAME_MAGIC and frame[1] == R.CMD_LATCH_PERIOD:
            for m in listeners:
                m.gc_frame(frame[2], frame[3] | frame[4] << 8, t)
        self._wire(len(frame) + 1)
        return len(frame)

    def drdy_level(self, now=None):
        """Wired-OR DRDY line of all modules (0 if any holds it low)."""
        for m in self.modules:
            if m.drdy_level(now) == 0:
                return 0
        return 1


class _Pair:
    """Two modules answering one address: reads AND together, writes reach both."""

    def __init__(self, a, b, t):
        self.a = a
        self.b = b

    @property
    def ptr(self):
        return self.a.ptr

    @ptr.setter
    def ptr(self, v):
        self.a.ptr = v
        self.b.ptr = v

    def read_into(self, buf, hook=None):
        tmp = bytearray(len(buf))
        self.a.read_into(buf, hook)
        self.b.read_into(tmp, None)
        for i in range(len(buf)):
            buf[i] &= tmp[i]

    def write(self, reg, val, t):
        self.a.write(reg, val, t)
        self.b.write(reg, val, t)
