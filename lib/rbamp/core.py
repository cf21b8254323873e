"""RbAmpCore: bus primitives with retries, identification, the allocation-free
RT hot path and the float accessors of one rbAmp module (RbAmp adds commands).

Configure the bus at 50 kHz (machine.I2C(..., freq=50_000)): the module's
sheet recommends it; at 100 kHz ESP32 hosts see frequent NACKs."""
import time

from rbamp import regs as R
from rbamp.decode import mw_at, f32_at
from rbamp.errors import (RbAmpIOError, RbAmpTimeoutError, RbAmpNotReadyError, RbAmpParamError,
                          RbAmpVersionError, RbAmpUnsupportedError, RbAmpDeviceError)
from rbamp.energy import RbAmpEnergy
from rbamp.snapshot import _Indexed

try:
    from micropython import const
except ImportError:  # CPython
    def const(__x):
        return __x

# hot-path constants (folded at compile time on MicroPython)
_RT_FIRST = const(0x70)
_RT_LEN = const(78)
_OFF_P0 = const(0x36)          # 0xA6 - 0x70
_REG_P0 = const(0xA6)
_REG_STATUS_MIRROR = const(0x70)
_REG_SEQ = const(0x71)
_ST_READY = const(0x01)
_ST_EVENTS = const(0x04)
_ST_JUNK = const(0xF8)
_REG_EVENT_FLAGS = const(0x2A)
_EV_RESET = const(0x20)
_BAD = const(-(1 << 30))

_ENODEV = const(19)
_EIO = const(5)
_ETIMEDOUT = const(110)
_GHOST = b"\x3c\x2f\xfb\x3f"     # ~1.962 as float32 LE
_ERRNAMES = {19: "ENODEV", 5: "EIO", 110: "ETIMEDOUT", 116: "ETIMEDOUT"}

# sanity limits of the float accessors (values beyond are a bus artefact)
_LIM_U = 500.0
_LIM_I = 150.0
_LIM_P = 50000.0
_LIM_PF = 1.5


def _default_delay():
    if hasattr(time, "sleep_ms"):
        return time.sleep_ms            # type: ignore

    def delay_ms(ms):
        time.sleep(ms / 1000)
    return delay_ms


def _default_ticks():
    if hasattr(time, "ticks_ms"):
        return time                      # the MicroPython time module has the seam
    from clock import Ticks
    mono = getattr(time, "monotonic")
    return Ticks(source=lambda: int(mono() * 1000))


def _is_ghost(buf):
    i = 0
    n = len(buf)
    while i < n:
        if buf[i] != _GHOST[i & 3]:
            return False
        i += 1
    return True


def _variant_channels(v):
    return (v - 1) % 3 + 1


def _errno_of(e):
    en = e.errno if hasattr(e, "errno") else None
    if not isinstance(en, int) and e.args and isinstance(e.args[0], int):
        en = e.args[0]
    return en if isinstance(en, int) else _EIO


class RbAmpCore:
    def __init__(self, i2c, addr=R.DEFAULT_ADDR, delay_ms=None, ticks=None,
                 attempts=3, retry_gap_ms=2, latch_on_begin=True):
        if not (R.ADDR_MIN <= addr <= R.ADDR_MAX):
            raise RbAmpParamError("rbAmp: address 0x%02X outside 0x08..0x77" % addr)
        self.i2c = i2c
        self.address = addr
        self._delay = delay_ms if delay_ms is not None else _default_delay()
        self._ticks = ticks if ticks is not None else _default_ticks()
        self.attempts = attempts if attempts > 0 else 1
        self.retry_gap_ms = retry_gap_ms
        self.latch_on_begin = latch_on_begin
        # preallocated buffers: the hot path never allocates
        self.rt_buf = bytearray(_RT_LEN)
        self._b1 = bytearray(1)
        self._b2 = bytearray(2)
        self._b4 = bytearray(4)
        self._w1 = bytearray(1)
        self.p_mw = [0, 0, 0]
        self.events_pending = False
        self.read_mode = "burst"
        self._burst = True
        self._seq = -1
        self._reboot_seen = False
        # identity (filled by begin())
        self.product_id = 0
        self.version = 0
        self.variant = 0
        self.variant_name = ""
        self.channels = 0
        self.has_voltage_hw = False
        self.capability = 0
        self.tier = R.TIER_BASIC
        self.tier_name = "BASIC"
        self.tier_flags = 0
        self.topology = 0
        self.uid = b""
        self.label = ""
        self.started = False
        # counters
        self.retry_count_total = 0
        self.retry_exhaustion_count = 0
        self.sanity_reject_count = 0
        self.torn_retry_count = 0
        self.reboot_count = 0
        self.lost_period_count = 0
        # period / energy
        self._anchor = None
        self.energy = RbAmpEnergy(3)
        self._addr_candidate = -1
        self._addr_armed_at = 0
        self.power = _Indexed(self.read_power, self._nch)
        self.current = _Indexed(self.read_current, self._nch)
        self.current_peak = _Indexed(self.read_current_peak, self._nch)
        self.power_factor = _Indexed(self.read_power_factor, self._nch)
        self.reactive_power = _Indexed(self.read_reactive_power, self._nch)

    def _nch(self):
        return self.channels

    # ------------------------------------------------------------ context
    def __enter__(self):
        if not self.started:
            self.begin()
        return self

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return "RbAmp(0x%02X %s v0x%02X %s %s)" % (self.address, self.variant_name or "?",
                                                 self.version, self.tier_name, self.read_mode)

    # ------------------------------------------------------------ raw bus
    def _io_error(self, e, what):
        en = _errno_of(e)
        if en == _ENODEV:
            kind = "no ACK"
        elif en == _ETIMEDOUT or en == 116:
            kind = "bus timeout"
        else:
            kind = "bus error"
        return RbAmpIOError(en, "rbAmp 0x%02X: %s after %d attempts (%s) %s" % (
            self.address, kind, self.attempts, _ERRNAMES.get(en, "errno %d" % en), what))

    def _rd_into(self, reg, buf):
        # up to `attempts` transactions; the success path allocates nothing
        n = 0
        confirm = False
        while True:
            try:
                self.i2c.readfrom_mem_into(self.address, reg, buf)
                if n == 0 or confirm or not _is_ghost(buf):
                    return
                # ESP-IDF may return its stale buffer on the read after a
                # NACK: read once more (a real value repeats without a NACK)
                self.sanity_reject_count += 1
                confirm = True
                continue
            except OSError as e:
                confirm = False
                n += 1
                if n >= self.attempts:
                    self.retry_exhaustion_count += 1
                    raise self._io_error(e, "reading 0x%02X" % reg)
                self.retry_count_total += 1
                self._delay(self.retry_gap_ms)

    def _wr(self, reg, val):
        w = self._w1
        w[0] = val & 0xFF
        n = 0
        while True:
            try:
                self.i2c.writeto_mem(self.address, reg, w)
                return
            except OSError as e:
                n += 1
                if n >= self.attempts:
                    self.retry_exhaustion_count += 1
                    raise self._io_error(e, "writing 0x%02X" % reg)
                self.retry_count_total += 1
                self._delay(self.retry_gap_ms)

    def read_u8(self, reg):
        b = self._b1
        self._rd_into(reg, b)
        return b[0]

    def read_u16(self, reg):
        if not self._burst:
            return self.read_u8(reg) | self.read_u8(reg + 1) << 8
        b = self._b2
        self._rd_into(reg, b)
        return b[0] | b[1] << 8

    def read_u16_agree(self, reg):
        """Read twice until two reads agree (registers outside the read-freeze)."""
        last = self.read_u16(reg)
        for _ in range(4):
            v = self.read_u16(reg)
            if v == last:
                return v
            last = v
        raise RbAmpIOError(_EIO, "rbAmp 0x%02X: 0x%02X keeps changing" % (self.address, reg))

    def read_block(self, reg, n):
        """n consecutive register bytes (burst, or byte by byte)."""
        buf = bytearray(n)
        if self._burst:
            self._rd_into(reg, buf)
        else:
            b = self._b1
            for i in range(n):
                self._rd_into(reg + i, b)
                buf[i] = b[0]
        return buf

    def _read_coherent(self, reg, buf):
        """Bytes of one RT commit: one burst (read-freeze), or byte by byte
        bracketed by DIGEST SEQ reads and repeated if a commit slipped in."""
        if self._burst:
            self._rd_into(reg, buf)
            return
        b = self._b1
        for _ in range(4):
            self._rd_into(_REG_SEQ, b)
            s0 = b[0]
            for i in range(len(buf)):
                self._rd_into(reg + i, b)
                buf[i] = b[0]
            self._rd_into(_REG_SEQ, b)
            if b[0] == s0:
                return
            self.torn_retry_count += 1
        raise RbAmpIOError(_EIO, "rbAmp 0x%02X: no coherent read of 0x%02X (data kept changing)" % (
            self.address, reg))

    # ------------------------------------------------------------ identity
    def probe(self):
        """True if the address ACKs and PRODUCT_ID says rbAmp."""
        try:
            self.i2c.readfrom_mem_into(self.address, R.PRODUCT_ID, self._b1)
        except OSError:
            return False
        return self._b1[0] == R.PRODUCT_RBAMP

    def _wait_ack(self, budget_ms):
        # the module NACKs its address while booting (~10 ms, more after reset)
        waited = 0
        step = 10
        while True:
            try:
                self.i2c.readfrom_mem_into(self.address, R.PRODUCT_ID, self._b1)
                return
            except OSError as e:
                if waited >= budget_ms:
                    self.retry_exhaustion_count += 1
                    en = _errno_of(e)
                    raise RbAmpIOError(en, "rbAmp 0x%02X: no ACK within %d ms (%s)" % (
                        self.address, budget_ms, _ERRNAMES.get(en, "errno %d" % en)))
                self.retry_count_total += 1
                self._delay(step)
                waited += step

    def begin(self):
        """Probe and identify the module, detect the read mode, clear boot
        events and (by default) prime the period accumulator with a latch."""
        self.started = False
        self._wait_ack(300)
        pid = self.read_u8(R.PRODUCT_ID)
        if pid != R.PRODUCT_RBAMP:
            raise RbAmpVersionError("rbAmp 0x%02X: PRODUCT_ID 0x%02X is not an rbAmp (expected 0x01%s)" % (
                self.address, pid, ", 0x02 is an rbDimmer" if pid == 2 else ""))
        ver = self.read_u8(R.VERSION)
        if ver == 0x00 or ver == 0xFF:
            raise RbAmpVersionError("rbAmp 0x%02X: invalid firmware VERSION 0x%02X" % (self.address, ver))
        var = self.read_u8(R.HW_VARIANT)
        if not (1 <= var <= 6):
            raise RbAmpVersionError("rbAmp 0x%02X: HW_VARIANT %d is not an rbAmp variant (1..6)" % (
                self.address, var))
        tier_b = self.read_u8(R.FW_TIER)
        cap = self.read_u8(R.CAPABILITY) | self.read_u8(R.CAPABILITY + 1) << 8
        volt = var <= 3
        if cap != 0 or ver >= 0x04:
            if bool(cap & R.CAP_VOLTAGE) != volt:
                raise RbAmpDeviceError("rbAmp 0x%02X: faulty device: HW_VARIANT %s but CAPABILITY 0x%04X says %s voltage hardware" % (
                    self.address, R.VARIANT_NAMES[var - 1], cap, "with" if cap & R.CAP_VOLTAGE else "no"))
        # read mode: does a multi-byte read auto-increment the pointer?
        singles = bytes((pid, var, tier_b, cap & 0xFF, cap >> 8))
        probe = bytearray(5)
        self._rd_into(R.PRODUCT_ID, probe)
        self._burst = bytes(probe) == singles
        self.read_mode = "burst" if self._burst else "bytewise"
        self.product_id = pid
        self.version = ver
        self.variant = var
        self.variant_name = R.VARIANT_NAMES[var - 1]
        self.channels = _variant_channels(var)
        self.has_voltage_hw = volt
        self.capability = cap
        if ver >= 0x04:
            self.tier_flags = tier_b
            t = tier_b & 0x03
        else:                       # v1.2 and older: no tier register, BASIC only
            self.tier_flags = 0
            t = R.TIER_BASIC
        self.tier = t
        self.tier_name = R.TIER_NAMES[t] if t < 3 else "UNKNOWN"
        self.topology = self.read_u8(R.TOPOLOGY)
        self.uid = self.read_uid()
        self.label = self.read_label()
        # keep the caller's references (and energy totals) across re-begin()
        if len(self.p_mw) != self.channels:
            self.p_mw = [0] * self.channels
        if self.energy.nch != self.channels:
            self.energy = RbAmpEnergy(self.channels)
        self._seq = -1
        self.events_pending = False
        self._reboot_seen = False
        # boot sets EVENT bit5: clear it so a later bit5 means "rebooted"
        self.clear_event_flags(0x3F)
        self._anchor = None
        if self.latch_on_begin:
            self._primer_latch()
        self.started = True
        return self

    def _primer_latch(self):
        # the first latch after boot covers an undefined window: discard it
        self._wr(R.COMMAND, R.CMD_LATCH_PERIOD)
        self._anchor = self._ticks.ticks_ms()

    @property
    def firmware_version(self):
        return self.version

    @property
    def topology_name(self):
        return ("", "SINGLE", "SPLIT_PHASE", "THREE_PHASE")[self.topology] if 0 <= self.topology <= 3 else "UNKNOWN"

    def read_product_id(self):
        return self.read_u8(R.PRODUCT_ID)

    def read_variant(self):
        return self.read_u8(R.HW_VARIANT)

    def read_capability(self):
        return self.read_u16(R.CAPABILITY)

    def read_uid(self):
        return bytes(self.read_block(R.UID, R.UID_LEN))

    def read_label(self):
        b = self.read_block(R.LABEL, R.LABEL_LEN)
        out = ""
        for c in b:
            if not c:
                break
            out += chr(c) if 0x20 <= c < 0x7F else "?"    # never fail on a junk label
        return out

    def _ch(self, ch):
        if not isinstance(ch, int) or not (0 <= ch < (self.channels or 3)):
            raise RbAmpParamError("rbAmp 0x%02X: channel %r out of range 0..%d" % (
                self.address, ch, (self.channels or 3) - 1))
        return ch

    def _need_voltage(self, what):
        if self.started and not self.has_voltage_hw:
            raise RbAmpUnsupportedError("rbAmp 0x%02X: %s needs voltage hardware; %s is current-only" % (
                self.address, what, self.variant_name))

    # ------------------------------------------------------------ hot path
    def read_rt(self):
        """One coherent read of DIGEST STATUS/SEQ and the RT block; decodes
        each channel's P into self.p_mw (int mW, BAD if invalid). Returns the
        number of RT windows since the previous call (0 same, 1 next, k>1
        means k-1 missed; 1 for the first read after begin/reboot), or -1 if
        the module has no valid data. Allocation-free on success (burst)."""
        buf = self.rt_buf
        k = 0
        while True:
            if self._burst:
                self._rd_into(_RT_FIRST, buf)
            else:
                self._rt_bytewise()
            st = buf[0]
            # STATUS defines bits 0..2 only: anything else is a garbage read
            # (e.g. the ESP-IDF stale-buffer ghost after a NACK): read again
            if not st & _ST_JUNK:
                break
            self.sanity_reject_count += 1
            k += 1
            if k >= self.attempts:
                raise RbAmpIOError(_EIO, "rbAmp 0x%02X: implausible STATUS 0x%02X in %d reads" % (
                    self.address, st, k))
        if st & _ST_EVENTS:
            self.events_pending = True
            if not self._reboot_seen:
                # a reboot restarts SEQ at 0: look at EVENT_FLAGS (read only,
                # the flags stay for check_events) so the count stays right
                b = self._b1
                self._rd_into(_REG_EVENT_FLAGS, b)
                if b[0] & _EV_RESET:
                    self._reboot_seen = True
                    self.reboot_count += 1
                    self._seq = -1
        else:
            self.events_pending = False
        p = self.p_mw
        n = len(p)
        if not st & _ST_READY:
            i = 0
            while i < n:
                p[i] = _BAD
                i += 1
            return -1
        seq = buf[1]
        last = self._seq
        self._seq = seq
        i = 0
        while i < n:
            v = mw_at(buf, _OFF_P0 + 4 * i)
            if v == _BAD:
                self.sanity_reject_count += 1
            p[i] = v
            i += 1
        if last < 0:
            return 1
        return (seq - last) & 0xFF

    def _rt_bytewise(self):
        # per-byte fallback: STATUS, SEQ, P bytes, SEQ again; repeat if torn
        buf = self.rt_buf
        b = self._b1
        n4 = 4 * len(self.p_mw)
        tries = 0
        while True:
            self._rd_into(_REG_SEQ, b)
            s0 = b[0]
            self._rd_into(_REG_STATUS_MIRROR, b)
            buf[0] = b[0]
            i = 0
            while i < n4:
                self._rd_into(_REG_P0 + i, b)
                buf[_OFF_P0 + i] = b[0]
                i += 1
            self._rd_into(_REG_SEQ, b)
            if b[0] == s0:
                buf[1] = s0
                return
            tries += 1
            self.torn_retry_count += 1
            if tries >= 4:
                raise RbAmpIOError(_EIO, "rbAmp 0x%02X: RT data changed during every bytewise read" % self.address)

    def check_events(self):
        """Read EVENT_FLAGS, W1C-clear what was set and return the flags.
        Bit5 (module rebooted) resets SEQ tracking."""
        flags = self.read_u8(R.EVENT_FLAGS)
        if flags:
            self._wr(R.EVENT_FLAGS, flags)
        self.events_pending = False
        if flags & R.EV_RESET:
            if not self._reboot_seen:
                self.reboot_count += 1
                self._seq = -1
        self._reboot_seen = False
        return flags

    def read_event_flags(self):
        return self.read_u8(R.EVENT_FLAGS)

    def clear_event_flags(self, mask=0x3F):
        self._wr(R.EVENT_FLAGS, mask & 0xFF)

    # ------------------------------------------------------------ human floats
    def _f32(self, reg, lim, what):
        b = self._b4
        self._read_coherent(reg, b)
        if b == _GHOST:
            # ESP-IDF can hand back this stale pattern after a NACK: confirm
            self.sanity_reject_count += 1
            self._read_coherent(reg, b)
        x = f32_at(b, 0)
        if x != x or x - x != 0.0 or abs(x) > lim:
            self.sanity_reject_count += 1
            raise RbAmpIOError(_EIO, "rbAmp 0x%02X: implausible %s %r at 0x%02X" % (self.address, what, x, reg))
        return x

    def rt_float(self, reg):
        """Decode a float register from the last read_rt() buffer (no bus
        traffic; raw value, may be NaN). reg in 0x86..0xBA."""
        if not (R.U_RMS <= reg <= R.RT_FIRST + R.RT_LEN - 4):
            raise RbAmpParamError("rbAmp: 0x%02X is not in the RT block" % reg)
        return f32_at(self.rt_buf, reg - R.RT_FIRST)

    def read_voltage(self, phase=0):
        self._need_voltage("voltage")
        return self._f32(R.U_RMS, _LIM_U, "voltage")

    def read_voltage_peak(self):
        self._need_voltage("voltage")
        return self._f32(R.U_PEAK, _LIM_U, "voltage peak")

    def read_current(self, ch=0):
        return self._f32(R.I_RMS0 + 4 * self._ch(ch), _LIM_I, "current")

    def read_current_peak(self, ch=0):
        return self._f32(R.I_PEAK0 + 4 * self._ch(ch), _LIM_I, "current peak")

    def read_power(self, ch=0):
        """Signed real power in W (> 0 consumption, < 0 export)."""
        self._need_voltage("real power")
        return self._f32(R.P_REAL0 + 4 * self._ch(ch), _LIM_P, "power")

    def read_power_factor(self, ch=0):
        self._need_voltage("power factor")
        reg = R.PF0 + 4 * self._ch(ch)
        b = self._b4
        self._read_coherent(reg, b)
        x = f32_at(b, 0)
        if x != x:
            return 0.0              # undefined at zero current
        if abs(x) > _LIM_PF:
            self.sanity_reject_count += 1
            raise RbAmpIOError(_EIO, "rbAmp 0x%02X: implausible power factor %r" % (self.address, x))
        return x

    def read_reactive_power(self, ch=0):
        self._need_voltage("reactive power")
        return self._f32(R.Q_REAC0 + 4 * self._ch(ch), _LIM_P, "reactive power")

    def read_frequency(self):
        """Mains frequency in whole Hz (0 = no zero-cross)."""
        return self.read_u8(R.AC_FREQ)

    @property
    def voltage(self):
        return self.read_voltage()

    @property
    def voltage_peak(self):
        return self.read_voltage_peak()

    @property
    def frequency(self):
        return self.read_frequency()

    def wait_ready(self, timeout_ms=1000):
        """Poll DATA_VALID (0xCE bit0) until the module has an RT result."""
        waited = 0
        while not self.read_u8(R.DATA_VALID) & 1:
            if waited >= timeout_ms:
                raise RbAmpTimeoutError("rbAmp 0x%02X: no valid data after %d ms" % (self.address, timeout_ms))
            self._delay(10)
            waited += 10
        return True

    def _check_error(self, what):
        err = self.read_u8(R.ERROR)
        if err:
            name = R.ERROR_NAMES.get(err, "?")
            msg = "rbAmp 0x%02X: %s failed: ERROR 0x%02X %s" % (self.address, what, err, name)
            if err == R.ERR_PARAM:
                raise RbAmpParamError(msg)
            if err == R.ERR_NOT_READY:
                raise RbAmpNotReadyError(msg)
            raise RbAmpDeviceError(msg)
        return err
