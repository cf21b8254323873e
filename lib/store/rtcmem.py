"""Fast state: a small CRC-protected record in RAM that survives soft resets,
watchdog resets and crashes (not power loss), updated cheaply and often.

Backends (one interface: capacity, load() -> bytes|None, store(buf, n), clear()):
  EspRtc     ESP32 machine.RTC().memory() (RTC slow RAM, up to 2 KiB)
  Rp2Scratch RP2040/RP2350 watchdog SCRATCH0..3 and 5..7 (28 bytes). pico-sdk
             keeps SCRATCH4 for watchdog/reboot bookkeeping (watchdog_enable
             writes a magic there); 5..7 are only written by watchdog_reboot()
             with a non-zero pc, and MicroPython's reset paths pass pc=0.
  RamFake    a bytearray the caller keeps across simulated reboots (tests)
  Noop       ports without retained RAM (unix, wasm): capacity 0

Record (compact, so one three-channel module fits RP2's 28 bytes): crc16(2)
len(1) tag(1), base-seq low 8 bits per slot (= per channel, 1 each), then one
zigzag varint per carried field: current value - value in that channel's last
flash record. A slot is trusted at boot only if its base seq equals the seq
of the flash record recovered for that channel (i.e. the fast record is newer
than flash for it). 8 bits suffice: the record is rewritten after every
commit, and cleared when that rewrite does not fit."""
from array import array

from store.record import get_varint

try:
    from micropython import const
except ImportError:
    def const(__x):
        return __x

_HDR = const(4)
_MAXLEN = const(255)         # len is one byte
_LIM = const(0x10000000)    # |diff| limit: zigzag stays a 31-bit small int


def _mk_table():
    t = array("H", [0] * 256)
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
            c &= 0xFFFF
        t[i] = c
    return t


_T = _mk_table()


def crc16(buf, start, end):
    """CRC-16/CCITT-FALSE over buf[start:end]; allocation-free."""
    c = 0xFFFF
    t = _T
    for i in range(start, end):
        c = ((c << 8) & 0xFFFF) ^ t[((c >> 8) ^ buf[i]) & 0xFF]
    return c


class Noop:
    capacity = 0

    def load(self):
        return None

    def store(self, buf, n):
        pass

    def clear(self):
        pass


class RamFake:
    """Retained RAM for tests: keep `mem` across the simulated reboot."""

    def __init__(self, mem):
        self.mem = mem
        self.capacity = len(mem)
        self.writes = 0

    def load(self):
        return bytes(self.mem)

    def store(self, buf, n):
        m = self.mem
        for i in range(n):
            m[i] = buf[i]
        self.writes += 1

    def clear(self):
        m = self.mem
        for i in range(len(m)):
            m[i] = 0


class EspRtc:
    def __init__(self, capacity=256):
        import machine
        self._rtc = machine.RTC()
        self.capacity = capacity

    def load(self):
        b = self._rtc.memory()  # type: ignore
        return bytes(b) if b else None

    def store(self, buf, n):
        self._rtc.memory(buf)  # type: ignore  # whole buffer: a slice would allocate

    def clear(self):
        self._rtc.memory(b"")  # type: ignore


_RP2040_SCRATCH0 = const(0x4005800C)   # WATCHDOG_BASE 0x40058000 + 0x0C
_RP2350_SCRATCH0 = const(0x400D800C)   # WATCHDOG_BASE 0x400D8000 + 0x0C (untested on hardware)
_RP2_WORDS = (0, 1, 2, 3, 5, 6, 7)


class Rp2Scratch:
    capacity = 28

    def __init__(self, mem32=None, base=_RP2040_SCRATCH0):
        if mem32 is None:
            import machine
            import sys
            mem32 = machine.mem32  # type: ignore
            if "RP2350" in getattr(sys.implementation, "_machine", ""):
                base = _RP2350_SCRATCH0
        self._m = mem32
        self._b = base

    def load(self):
        m = self._m
        out = bytearray(28)
        j = 0
        for w in _RP2_WORDS:
            v = m[self._b + 4 * w]
            for k in range(4):
                out[j] = (v >> (8 * k)) & 0xFF
                j += 1
        return bytes(out)

    def store(self, buf, n):
        # 32-bit words: values >= 2**30 are transient bigints on the MCU
        m = self._m
        j = 0
        for w in _RP2_WORDS:
            m[self._b + 4 * w] = buf[j] | (buf[j + 1] << 8) | (buf[j + 2] << 16) | (buf[j + 3] << 24)
            j += 4

    def clear(self):
        for w in _RP2_WORDS:
            self._m[self._b + 4 * w] = 0


def detect():
    """The retained-RAM backend of this port, or Noop."""
    import sys
    p = sys.platform
    try:
        if p == "esp32":
            return EspRtc()
        if p == "rp2":
            return Rp2Scratch()
    except Exception:
        pass
    return Noop()


class Fast:
    """Encoder/decoder of the fast record over a backend. `cur` and `base`
    are preallocated arrays of the carried fields; update() is allocation-free."""

    def __init__(self, backend, nmods, nvals, tag):
        self.be = backend
        cap = backend.capacity
        self.buf = bytearray(cap)
        self.cap = cap if cap <= _MAXLEN else _MAXLEN
        self.nmods = nmods
        self.tag = tag & 0xFF
        self.cur = array("i", [0] * nvals)
        self.base = array("i", [0] * nvals)
        self.seqs = array("H", [0] * nmods)
        self.writes = 0
        self.overflows = 0     # updates that did not fit (older record kept)

    def encode(self):
        """Fill buf from cur - base; returns the length or -1 if it does not fit."""
        b = self.buf
        cap = self.cap
        j = _HDR + self.nmods
        if j > cap:
            return -1
        b[3] = self.tag
        seqs = self.seqs
        for m in range(self.nmods):
            b[_HDR + m] = seqs[m] & 0xFF
        cur = self.cur
        base = self.base
        for k in range(len(cur)):
            d = cur[k] - base[k]
            if d >= _LIM or d <= -_LIM:
                return -1
            z = d + d if d >= 0 else -d - d - 1
            while z >= 0x80:
                if j >= cap:
                    return -1
                b[j] = (z & 0x7F) | 0x80
                z >>= 7
                j += 1
            if j >= cap:
                return -1
            b[j] = z
            j += 1
        b[2] = j
        c = crc16(b, 2, j)
        b[0] = c & 0xFF
        b[1] = c >> 8
        return j

    def update(self):
        """Encode and write; keeps the previous (older, still valid) record if
        the new one does not fit. Allocation-free with RamFake/EspRtc."""
        if self.cap == 0:
            return False
        n = self.encode()
        if n < 0:
            self.overflows += 1
            return False
        self.be.store(self.buf, n)
        self.writes += 1
        return True

    def clear(self):
        if self.cap:
            self.be.clear()

    def min_len(self):
        """Smallest record of this layout (every delta 0)."""
        return _HDR + self.nmods + len(self.cur)

    def read(self, seqs):
        """Per-slot diffs from the retained record, or None if it is not
        valid (bad CRC, other layout tag, zeroed RAM). A slot whose base seq
        (low 8 bits) differs from seqs[k] - the flash record was replaced
        after the fast record was written - gets None instead of its diffs."""
        if self.cap == 0:
            return None
        try:
            b = self.be.load()
        except Exception:
            return None
        ns = self.nmods
        if not b or len(b) < _HDR:
            return None
        n = b[2]
        if n < _HDR + ns or n > len(b):
            return None
        if crc16(b, 2, n) != (b[0] | (b[1] << 8)) or b[3] != self.tag:
            return None
        per = len(self.cur) // ns if ns else 0
        out = []
        j = _HDR + ns
        for m in range(ns):
            d = []
            for _ in range(per):
                try:
                    v, j = get_varint(b, j, n)
                except ValueError:
                    return None
                d.append(v)
            ok = b[_HDR + m] == (seqs[m] & 0xFF)
            out.append(d if ok else None)
        if j != n:
            return None
        return out
