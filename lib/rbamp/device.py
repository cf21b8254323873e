"""RbAmp: driver for one rbAmp module on any object with the machine.I2C
memory methods (readfrom_mem_into, writeto_mem, writeto, scan).

Configure the bus at 50 kHz (machine.I2C(..., freq=50_000)): the module's
sheet recommends it; at 100 kHz ESP32 hosts see frequent NACKs.
This file: commands with settle times, the period snapshot, general call and
address change; rbamp.core holds the bus, identity and hot-path parts."""
from rbamp import regs as R
from rbamp.core import RbAmpCore, _errno_of, _ERRNAMES
from rbamp.decode import mw_at, f32_at, u32_at
from rbamp.errors import (RbAmpError, RbAmpIOError, RbAmpTimeoutError, RbAmpStaleError,
                          RbAmpParamError, RbAmpModeError, RbAmpUnsupportedError, RbAmpDeviceError)
from rbamp.snapshot import RbAmpPeriodSnapshot

try:
    from micropython import const
except ImportError:  # CPython
    def const(__x):
        return __x

_ENODEV = const(19)


class RbAmp(RbAmpCore):
    def command(self, opcode, settle_ms=0):
        """Write an opcode, sleep its settle time, then check ERROR."""
        self._wr(R.COMMAND, opcode)
        if settle_ms:
            self._delay(settle_ms)
        self._check_error("command 0x%02X" % opcode)

    def read_last_error(self):
        return self.read_u8(R.ERROR)

    def has_error(self):
        return (self.read_u8(R.STATUS) & R.ST_ERROR) != 0

    def clear_error(self):
        """CLEAR_ERROR; returns what ERROR reads afterwards (CLONE 0xF9 stays)."""
        self._wr(R.COMMAND, R.CMD_CLEAR_ERROR)
        self._delay(R.SETTLE_CLEAR_MS)
        return self.read_u8(R.ERROR)

    def reset(self):
        """Soft reset: wait for the module to answer again, re-prime."""
        self._wr(R.COMMAND, R.CMD_RESET)
        self._delay(R.SETTLE_RESET_MS)
        self._wait_ack(300)
        self._seq = -1
        self.events_pending = False
        self._reboot_seen = False
        self.clear_event_flags(R.EV_RESET)
        if self.latch_on_begin:
            self._primer_latch()

    def save_user_config(self):
        """Persist sensor class, CT models, fleet config, group id, label
        (one flash erase; ~10k cycles endurance: never in a loop)."""
        self.command(R.CMD_SAVE_USER_CONFIG, R.SETTLE_FLASH_MS)

    def latch_period(self):
        """LATCH_PERIOD without reading the snapshot (restarts the period)."""
        self.command(R.CMD_LATCH_PERIOD, R.SETTLE_LATCH_MS)
        self._anchor = self._ticks.ticks_ms()

    def is_period_valid(self):
        return (self.read_u8(R.PERIOD_VALID) & 1) != 0

    def read_period_avg_power(self, ch=0):
        self._ch(ch)
        reg = (R.PERIOD_AVG_P, R.PERIOD_AVG_P_CH1, R.PERIOD_AVG_P_CH2)[ch]
        b = self._b4
        self._read_coherent(reg, b)
        return f32_at(b, 0)

    def read_period_max_power(self):
        b = self._b4
        self._read_coherent(R.PERIOD_MAX_P, b)
        return f32_at(b, 0)

    def read_period_latch_ms(self):
        b = self._b4
        self._read_coherent(R.PERIOD_LATCH_MS, b)
        return u32_at(b, 0)

    def read_period_snapshot(self, settle_ms=R.SETTLE_LATCH_MS, skip_latch=False):
        """Latch the period, wait settle_ms, read the snapshot and feed
        dev.energy. Empty period -> RbAmpStaleError; the master anchor is kept
        (the firmware preserved its accumulator, the next latch covers it)."""
        if skip_latch:
            t = self._ticks.ticks_ms()
            dt = 0
        else:
            self._wr(R.COMMAND, R.CMD_LATCH_PERIOD)
            t = self._ticks.ticks_ms()
            dt = self._ticks.ticks_diff(t, self._anchor) if self._anchor is not None else 0
        try:
            if settle_ms and not skip_latch:
                self._delay(settle_ms)
            if not skip_latch:
                self._check_error("latch")
            if not self.read_u8(R.PERIOD_VALID) & 1:
                raise RbAmpStaleError("rbAmp 0x%02X: period empty/stale (PERIOD_VALID=0), latch again later" % self.address)
            regs = (R.PERIOD_AVG_P, R.PERIOD_AVG_P_CH1, R.PERIOD_AVG_P_CH2)
            nch = self.channels or 1
            avg = [0.0] * nch
            avg_mw = [0] * nch
            b = self._b4
            for ch in range(nch):
                self._read_coherent(regs[ch], b)
                avg[ch] = f32_at(b, 0)
                avg_mw[ch] = mw_at(b, 0)
            self._read_coherent(R.PERIOD_MAX_P, b)
            mx = f32_at(b, 0)
            self._read_coherent(R.PERIOD_LATCH_MS, b)
            lms = u32_at(b, 0)
            self._read_coherent(R.PERIOD_COMMIT_CNT, b)
            cnt = u32_at(b, 0)
        except RbAmpStaleError:
            raise
        except RbAmpError:
            if not skip_latch:
                # the latch itself went through: the chip restarted its
                # accumulator, so that period is lost (not re-counted later)
                self._anchor = t
                self.lost_period_count += 1
            raise
        snap = RbAmpPeriodSnapshot(True, avg, avg_mw, mx, lms, dt, cnt)
        if not skip_latch:
            self._anchor = t
            self.energy.tick(snap)
        return snap

    # ------------------------------------------------------------ identity config
    def set_label(self, text, save=False):
        """Write the 8-byte ASCII label byte by byte (writes do not
        auto-increment); save=True persists it (one flash write)."""
        if isinstance(text, str):
            data = text.encode()
        else:
            data = bytes(text)
        if len(data) > R.LABEL_LEN or any(c < 0x20 or c > 0x7E for c in data):
            raise RbAmpParamError("rbAmp 0x%02X: label must be up to 8 printable ASCII chars" % self.address)
        for i in range(R.LABEL_LEN):
            self._wr(R.LABEL + i, data[i] if i < len(data) else 0)
            self._check_error("label write")
        if save:
            self.save_user_config()
        self.label = data.decode()

    # ------------------------------------------------------------ fleet / GC
    def _need_cap(self, bit, what):
        if self.started and self.capability and not self.capability & bit:
            raise RbAmpUnsupportedError("rbAmp 0x%02X: %s not supported (CAPABILITY 0x%04X)" % (
                self.address, what, self.capability))

    def read_fleet_config(self):
        return self.read_u8(R.FLEET_CONFIG)

    def enable_gc(self, enable=True, persist=True):
        """Opt in to general-call latching. It takes effect only after a
        reset, so by default this saves the config and resets the module."""
        self._need_cap(R.CAP_GC_LATCH, "general-call latch")
        v = self.read_u8(R.FLEET_CONFIG)
        v = (v | 1) if enable else (v & 0xFE)
        self._wr(R.FLEET_CONFIG, v)
        self._check_error("FLEET_CONFIG write")
        if persist:
            self.save_user_config()
            self.reset()

    def set_group_id(self, group, persist=False):
        if not isinstance(group, int) or not (0 <= group <= 255):
            raise RbAmpParamError("rbAmp 0x%02X: group id %r outside 0..255" % (self.address, group))
        self._need_cap(R.CAP_GC_GROUP, "group filter")
        self._wr(R.GROUP_ID, group)
        self._check_error("GROUP_ID write")
        if persist:
            self.save_user_config()

    def read_group_id(self):
        return self.read_u8(R.GROUP_ID)

    def read_gc_tick(self):
        """Tick of the last accepted general-call latch (0xFFFF = none)."""
        return self.read_u16_agree(R.GC_TICK)

    @staticmethod
    def broadcast_latch_group(bus, group=0, tick=0, attempts=3):
        """Latch every GC-enabled module of `group` (0 = all) at once with the
        5-byte general-call frame A5 27 group tick_lo tick_hi."""
        if not (0 <= group <= 255):
            raise RbAmpParamError("rbAmp: group %r outside 0..255" % (group,))
        if not (0 <= tick <= 0xFFFF):
            raise RbAmpParamError("rbAmp: tick %r outside 0..65535" % (tick,))
        frame = bytes((R.GC_MAGIC0, R.GC_MAGIC1, group, tick & 0xFF, tick >> 8))
        n = 0
        while True:
            try:
                bus.writeto(R.GC_ADDR, frame)
                return tick
            except OSError as e:
                n += 1
                if n >= attempts:
                    en = _errno_of(e)
                    raise RbAmpIOError(en, "rbAmp general call: %s after %d attempts (%s)%s" % (
                        "no ACK" if en == _ENODEV else "bus error", attempts, _ERRNAMES.get(en, "errno %d" % en),
                        ": no module has GC enabled?" if en == _ENODEV else ""))

    @staticmethod
    def broadcast_latch(bus):
        return RbAmp.broadcast_latch_group(bus, 0, 0)

    # ------------------------------------------------------------ address change
    def prepare_address_change(self, new_addr):
        """Stage a new address; commit_address_change() must follow within 5 s."""
        if not isinstance(new_addr, int) or not (R.ADDR_MIN <= new_addr <= R.ADDR_MAX):
            raise RbAmpParamError("rbAmp 0x%02X: new address %r outside 0x08..0x77" % (self.address, new_addr))
        if new_addr == self.address:
            raise RbAmpParamError("rbAmp 0x%02X: new address equals the current one" % self.address)
        self._wr(R.I2C_ADDRESS, new_addr)
        self._check_error("address staging")
        self._addr_candidate = new_addr
        self._addr_armed_at = self._ticks.ticks_ms()

    def commit_address_change(self):
        """Magic, COMMIT_ADDR (flash), RESET, then re-identify at the new
        address. Returns the new address."""
        cand = self._addr_candidate
        if cand < 0:
            raise RbAmpModeError("rbAmp 0x%02X: call prepare_address_change() first" % self.address)
        self._addr_candidate = -1
        age = self._ticks.ticks_diff(self._ticks.ticks_ms(), self._addr_armed_at)
        if age > R.ADDR_ARM_WINDOW_MS:
            raise RbAmpTimeoutError("rbAmp 0x%02X: address change armed %d ms ago (> 5000 ms); prepare again" % (
                self.address, age))
        self._wr(R.ADDR_COMMIT_MAGIC, R.ADDR_MAGIC)
        self.command(R.CMD_COMMIT_ADDR, R.SETTLE_FLASH_MS)
        self._wr(R.COMMAND, R.CMD_RESET)
        self._delay(R.SETTLE_RESET_MS)
        old = self.address
        self.address = cand
        try:
            self._wait_ack(1000)
            uid = self.read_uid()
        except RbAmpError:
            self.address = old
            raise
        if self.uid and uid != self.uid:
            raise RbAmpDeviceError("rbAmp: a different module answers at 0x%02X" % cand)
        self.begin()
        return cand

    def reset_counters(self):
        self.retry_count_total = 0
        self.retry_exhaustion_count = 0
        self.sanity_reject_count = 0
        self.torn_retry_count = 0
