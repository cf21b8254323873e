"""One simulated rbAmp module: a 256-byte page-0 register image driven lazily
by master time (see docs/simulator.md for every fidelity choice)."""
import math
import struct

from . import regs as R
from .faults import Faults, Rng, mix, thresh, M32
from .profile import Profile, INF

LOOP_MAX = 64          # windows processed one by one; longer gaps in closed form
RESET_BOOT_MS = 290    # CMD RESET: MCU restarts this long after the command
SQRT2 = math.sqrt(2.0)

_CT_V13 = {0: (), 1: (1, 2, 3, 4, 6), 2: (1, 2, 3), 3: ()}
_CT_V12 = (1, 2, 3, 4, 5)
_CT_AMPS = {1: 5, 2: 10, 3: 30, 4: 50, 5: 100, 6: 20, 7: 60}  # SCT-013-0xx ratings

# command opcodes that only a factory/develop build accepts
_FACTORY_OPS = (0x02, 0x03, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x33, 0x37)
# flash operations: the MCU stalls (address NACK) for the settle time
_FLASH_SETTLE = {R.CMD_SAVE_GAINS: 700, R.CMD_COMMIT_ADDR: 700,
                 R.CMD_SAVE_USER_CONFIG: 700, R.CMD_FACTORY_RESET: 1500}


def _f32(mem, off, v):
    struct.pack_into("<f", mem, off, v)


def _u16(mem, off, v):
    mem[off] = v & 0xFF
    mem[off + 1] = (v >> 8) & 0xFF


def _u32(mem, off, v):
    struct.pack_into("<I", mem, off, v & M32)


class Module:
    def __init__(self, addr=0x50, variant="UI1", version=0x03, profile=None,
                 auto_increment=True, seed=1, label="", uid=None, virgin=False,
                 mode=0, faults=None, clock=None, window_ms=200, first_commit_ms=50,
                 boot_nack_ms=10, latch_delay_ms=20, gc_enable=False, group_id=0,
                 sensor_class=1, ct_model=3, boot_error=0, ct_overflow=False):
        if variant not in R.VARIANTS:
            raise ValueError("variant must be one of UI1 UI2 UI3 I1 I2 I3")
        if version not in (0x03, 0x04):
            raise ValueError("version must be 0x03 (v1.2) or 0x04 (v1.3)")
        self.variant = variant
        self.hw_variant, self.nch, self.has_u = R.VARIANTS[variant]
        self.version = version
        self.profile = profile if profile is not None else Profile.constant([0.0] * 3)
        self.auto_increment = auto_increment
        self.seed = seed
        self.mode = mode
        self.window_ms = window_ms
        self.first_commit_ms = first_commit_ms
        self.boot_nack_ms = boot_nack_ms
        self.latch_delay_ms = latch_delay_ms
        self.boot_error = boot_error      # e.g. 0xF9 clone lockout, 0xFA LUT bad
        self.ct_overflow = ct_overflow    # ERROR 0xFD when I exceeds the CT rating
        self.on_drdy = None       # callable(module, t_ms) per DRDY falling edge
        self.mem = bytearray(256)
        self._views = {}
        self.ptr = 0
        if uid is None:
            uid = b""
            for i in range(3):
                uid += struct.pack("<I", mix(seed, addr, 0x1D + i))
        self.uid = bytes(uid)[:12]
        lab = label.encode() if isinstance(label, str) else bytes(label)
        self.flash = {
            "addr": addr, "sensor_class": sensor_class,
            "ct": [ct_model if c < self.nch else 0 for c in range(3)],
            "fleet": 1 if gc_enable else 0, "group": group_id,
            "label": (lab + bytes(8))[:8], "saved": not virgin,
        }
        self.addr = addr
        self._faults = faults
        self.clock = None
        self.bus = None
        self.created_ms = None
        self.drdy_count_total = 0
        self.boots = 0
        self.basic = [0, 0, 0]     # chip-view consumption truth (mW*ms)
        self._w = [0, 0, 0, 0]
        self._pubw = [0, 0, 0, 0]
        self._row = None
        self._events = []
        self._evn = 0
        self._due = INF           # master time before which nothing can change
        self._stalled = 0
        self.running = False
        if clock is not None:
            self._attach(None, clock, None)

    # ---- wiring ---------------------------------------------------------
    def _attach(self, bus, clock, faults):
        if bus is not None:
            self.bus = bus
        if self.clock is not None:
            return
        self.clock = clock
        if self._faults is None:
            self._faults = faults if faults is not None else Faults()
        f = self._faults
        self._hs = mix(f.seed, self.flash["addr"], self.seed)
        self._th_nan = thresh(f.nan_rate)
        self._th_inf = thresh(f.inf_rate)
        self._th_stale = thresh(f.stale_rate)
        j = f.jitter_ms
        self._jit = max(0, min(j, self.window_ms // 2 - 1, self.first_commit_ms - 1))
        self._ppm = f.window_ppm
        self._skew = f.chip_skew
        t = clock.now_ms()
        self.created_ms = t
        self._stalled = 0
        for tr in f.reboot_at:
            if tr > t:  # glitches before this module existed do not apply
                self._push(tr, "reboot", R.RC_POR, True)
        for a, b in f.stale_at:
            self._push(a, "stall", 1, True)
            self._push(b, "stall", -1, True)
        if self.boot_error == R.ERR_CLONE:
            self._stalled = 1  # clone lockout: measurement halted for good
        self._rrng = Rng(self._hs ^ 0x5A5A5A5A)
        if f.reboot_rate_per_h > 0:
            self._push(t + self._wdt_gap(), "wdt", R.RC_IWDG, True)
        self._power_on(t, R.RC_POR)

    def _wdt_gap(self):
        u = (self._rrng.u32() + 1) / 4294967297.0
        rate = self._faults.reboot_rate_per_h  # type: ignore
        return 1 + int(-math.log(u) * 3600000.0 / rate)

    def _push(self, t, kind, arg, persistent=False):
        self._evn += 1
        ev = (t, self._evn, kind, arg, persistent)
        evs = self._events
        i = len(evs)
        while i and evs[i - 1][0] > t:
            i -= 1
        evs.insert(i, ev)
        if t < self._due:
            self._due = t

    # ---- power-on state -------------------------------------------------
    def _power_on(self, t, cause):
        fl = self.flash
        m = self.mem
        for i in range(256):
            m[i] = 0
        self.boots += 1
        self.addr = fl["addr"]
        self.gc_active = bool(fl["fleet"] & 1)
        m[R.VERSION] = self.version
        m[R.MODE] = self.mode
        m[R.CT_MODEL] = 0
        m[R.LUT_VALID_MASK] = 0x0F
        self._lut_view(0)
        for i in range(4):
            _u16(m, R.ADC_MEAN_U + 2 * i, (2048 + (mix(self._hs, i, 3) % 9) - 4) if i <= self.nch else 0)
        m[R.CALIBRATION] = 1
        m[R.TOPOLOGY] = self.nch
        m[R.SENSOR_CLASS] = fl["sensor_class"]
        m[R.FLEET_CONFIG] = fl["fleet"]
        m[R.GROUP_ID] = fl["group"]
        _u16(m, R.THRESH_I_HI, 0xFFFF)
        _u16(m, R.THRESH_P_HI, 0xFFFF)
        m[R.I2C_ADDRESS] = self.addr
        m[R.RESET_CAUSE] = cause
        _u16(m, R.ZC_OFFSET, 0 if self.has_u else 0xFFFF)
        self.ct = list(fl["ct"])
        for c in range(3):
            m[R.CT_MODEL_CH0 + c] = self.ct[c]
        m[R.PRODUCT_ID] = R.PRODUCT_RBAMP
        m[R.HW_VARIANT] = self.hw_variant
        m[R.FW_TIER] = 0x00   # BASIC (v1.3) / register absent (v1.2): both read 0
        _u16(m, R.CAPABILITY, R.CAP_UI if self.has_u else R.CAP_I)
        _u16(m, R.GC_TICK, 0xFFFF)
        m[R.UID:R.UID + 12] = self.uid
        m[R.LABEL:R.LABEL + 8] = fl["label"]
        for i in range(4):
            _u16(m, R.NOISE_FLOOR_U + 2 * i, 12)
            _f32(m, R.GAIN_U + 4 * i, 1.0)
        m[R.ERROR] = self.boot_error or (0 if fl["saved"] else R.ERR_FLASH_PARAMS)
        m[R.EVENT_FLAGS] = R.EV_RESET
        self.boot_ms = t
        self.running = True
        self.ack_from = t + self.boot_nack_ms
        self.busy_until = 0
        self.ready = False
        self.k = -1
        self._ck = t                  # time of commit k (boot for k = -1)
        self._next_c = self._c(0)     # time of commit k + 1
        self._pubkey = False          # publish cache valid
        self._pk = [0, 0, 0, 0, 1, 0]  # last published integrals, dur, DIGEST_CONFIG
        self.seq_val = 0
        self.boot_commits = 0
        self.acc_sum = [0, 0, 0]      # sum of clamped window P, uW (ints: no float allocs)
        self.acc_n = 0
        self.acc_max = 0              # max clamped window P ch0, uW
        self.latch_t = t
        self.last_commit_t = None
        self._magic_t = None
        self._events[:] = [e for e in self._events if e[4]]  # in place: _catch_up holds it
        self._due = 0
        self._sync_status()

    # ---- schedule -------------------------------------------------------
    def _c(self, k):
        """Master time of RT commit k since boot (k = -1: boot itself)."""
        if k < 0:
            return self.boot_ms
        w = self.window_ms
        off = k * w if not self._ppm else (k * w * (1000000 + self._ppm)) // 1000000
        if self._jit and k:
            off += mix(self._hs, k, self.boot_ms & M32) % (2 * self._jit + 1) - self._jit
        return self.boot_ms + self.first_commit_ms + off

    def _last_k(self, t):
        x = t - self.boot_ms - self.first_commit_ms
        if x < 0:
            return -1
        if self._ppm:
            k = (x * 1000000) // (self.window_ms * (1000000 + self._ppm))
        else:
            k = x // self.window_ms
        while self._c(k + 1) <= t:
            k += 1
        while k >= 0 and self._c(k) > t:
            k -= 1
        return k

    def next_commit_ms(self, now=None):
        """Master time of the next RT commit after `now` (None if halted)."""
        t = self._now(now)
        self._catch_up(t)
        if not self.running:
            return None
        return self._c(self._last_k(t) + 1)

    # ---- lazy engine ----------------------------------------------------
    def _now(self, now):
        if now is not None:
            return now
        if self.clock is None:
            raise RuntimeError("module not attached to a Bus (or given a clock)")
        return self.clock.now_ms()

    def _catch_up(self, t):
        if t < self._due:
            return
        evs = self._events
        while True:
            te = evs[0][0] if evs else INF
            if self.running:
                self._commits_upto(t if t < te else te)
            if te > t:
                break
            ev = evs.pop(0)
            self._event(ev)
        if self.running:
            nc = self._next_c
            up = (t - self.boot_ms) // 1000
            _u32(self.mem, R.UPTIME_S, up)
            nu = self.boot_ms + (up + 1) * 1000
            due = nc if nc < nu else nu
        else:
            due = INF
        if evs and evs[0][0] < due:
            due = evs[0][0]
        self._due = due

    def _event(self, ev):
        t, _, kind, arg, _p = ev
        if kind == "latch_pub":
            self._latch_publish(arg)
        elif kind == "err_ev":
            self._set_events(self.mem[R.EVENT_FLAGS] | R.EV_ERROR)
        elif kind == "boot":
            self._power_on(t, arg)
        elif kind == "reboot":
            self._power_on(t, arg)
        elif kind == "wdt":
            self._power_on(t, arg)
            self._push(t + self._wdt_gap(), "wdt", R.RC_IWDG, True)
        elif kind == "stall":
            self._stalled += arg
        elif kind == "capture":
            self.mem[R.CAPTURE_STATUS] = 1

    def _commits_upto(self, t):
        nc = self._next_c
        if t < nc:
            return
        k = self.k + 1
        nc2 = self._c(k + 1)
        if t < nc2 and not self._stalled:  # the usual case: exactly one window
            a = self._ck
            self.k = k
            self._ck = nc
            self._next_c = nc2
            if self._window(k, a, nc):
                self._publish()
            return
        K = self._last_k(t)
        k = self.k
        if self._stalled:  # ADC stalled: those windows never publish
            self._set_k(K)
            return
        prof = self.profile
        while K - k > LOOP_MAX:
            a = self._c(k)
            end = prof.next_change(a)
            j = self._last_k(end) if end < INF else K
            if j > K - LOOP_MAX:
                j = K - LOOP_MAX
            if j <= k + 1:
                self._window(k + 1, a, self._c(k + 1))
                k += 1
                continue
            self._bulk(k, j)
            k = j
        last = False
        b = self._c(k)
        while k < K:
            k += 1
            a = b
            b = self._c(k)
            if self._window(k, a, b):
                last = True
        self._set_k(K)
        if last:
            self._publish()

    def _set_k(self, k):
        self.k = k
        self._ck = self._c(k)
        self._next_c = self._c(k + 1)

    def _bulk(self, k, j):
        """Windows k+1..j inside one constant profile row: closed form."""
        a = self._c(k)
        b = self._c(j)
        n = j - k
        if self.has_u:
            prof = self.profile
            for ch in range(self.nch):
                p = prof.value_mw(ch, a)
                if p > 0:
                    self.acc_sum[ch] += n * p * 1000
                    self.basic[ch] += p * (b - a)
                    if ch == 0 and p * 1000 > self.acc_max:
                        self.acc_max = p * 1000
        self.acc_n += n
        self.seq_val = (self.seq_val + n) & 0xFF
        self.drdy_count_total += n
        self.boot_commits += n
        self.last_commit_t = b
        if self.on_drdy is not None:
            self.on_drdy(self, b)

    def _integrals(self, a, b):
        """Profile integrals over [a, b) into self._w, via a cached row."""
        w = self._w
        row = self._row
        if row is None or a < row[0] or b > row[1]:
            row = self.profile.row_span(a)
            self._row = row
        if b <= row[1]:
            dt = b - a
            w[0] = row[2] * dt
            w[1] = row[3] * dt
            w[2] = row[4] * dt
            w[3] = row[5] * dt
            return w
        return self.profile.window(a, b, 3, w)

    def _window(self, k, a, b):
        """Commit k over [a, b): accumulate; keep it for publishing.
        Returns False if the commit is skipped (stale fault)."""
        if self._th_stale and mix(self._hs, k, (self.boot_ms + 1) & M32) < self._th_stale:
            return False
        dur = b - a
        w = self._integrals(a, b)
        if self.has_u:
            for ch in range(self.nch):
                s = w[ch]
                if s > 0:
                    uw = s * 1000 // dur
                    self.acc_sum[ch] += uw
                    self.basic[ch] += s
                    if ch == 0 and uw > self.acc_max:
                        self.acc_max = uw
        self.acc_n += 1
        self.seq_val = (self.seq_val + 1) & 0xFF
        self.drdy_count_total += 1
        self.boot_commits += 1
        self.last_commit_t = b
        self._pubk = k
        self._puba = a
        self._pubb = b
        pw_ = self._pubw
        pw_[0] = w[0]
        pw_[1] = w[1]
        pw_[2] = w[2]
        pw_[3] = w[3]
        if self.on_drdy is not None:
            self.on_drdy(self, b)
        return True

    def _publish(self):
        """Write the last committed window into the register image."""
        m = self.mem
        w = self._pubw
        dur = self._pubb - self._puba
        k = self._pubk
        # cache key: the window averages (no tuple: tuples are slow to
        # allocate on the MicroPython unix port with a big heap)
        pk = self._pk
        if (pk[0] * dur == w[0] * pk[4] and pk[1] * dur == w[1] * pk[4]
                and pk[2] * dur == w[2] * pk[4] and pk[3] * dur == w[3] * pk[4]
                and pk[5] == m[R.DIGEST_CONFIG] and self._pubkey):
            # same averages as the last window (constant profile row): only
            # SEQ, the STATUS mirror, 0xCA and event thresholds change
            if pk[4] != dur:
                _u32(m, R.PERIOD_MS, int(dur * self._skew))
                pk[0] = w[0]
                pk[1] = w[1]
                pk[2] = w[2]
                pk[3] = w[3]
                pk[4] = dur
            m[R.DIGEST] = m[R.STATUS]
            m[R.DIGEST + 1] = self.seq_val
            self._thresholds(self._pubcur, self._pubps)
            if self._th_nan or self._th_inf:
                self._glitch(k)
            return
        pk[0] = w[0]
        pk[1] = w[1]
        pk[2] = w[2]
        pk[3] = w[3]
        pk[4] = dur
        pk[5] = m[R.DIGEST_CONFIG]
        self._pubkey = True
        u = w[3] / (dur * 1000.0)
        pf = self.profile.pf
        ps = [0.0, 0.0, 0.0]
        cur = [0.0, 0.0, 0.0]
        pfs = [0.0, 0.0, 0.0]
        q = [0.0, 0.0, 0.0]
        for ch in range(self.nch):
            p = w[ch] / (dur * 1000.0)
            f = pf[ch]
            cur[ch] = abs(p) / (u * f) if u > 0 and f > 0 else 0.0
            if self.has_u:
                ps[ch] = p
                pfs[ch] = f if p > 0 else (-f if p < 0 else 0.0)
                if 0 < f < 1:
                    q[ch] = abs(p) * math.sqrt(1.0 / (f * f) - 1.0)
        uu = u if self.has_u else 0.0
        struct.pack_into("<14f", m, R.U_RMS, uu, uu * SQRT2, cur[0], cur[1], cur[2],
                         cur[0] * SQRT2, cur[1] * SQRT2, cur[2] * SQRT2,
                         ps[0], ps[1], ps[2], pfs[0], pfs[1], pfs[2])
        struct.pack_into("<3f", m, R.Q_REAC, q[0], q[1], q[2])
        self._pubcur = cur
        self._pubps = ps
        if self.ct_overflow:
            for ch in range(self.nch):
                a = _CT_AMPS.get(self.ct[ch], 0)
                if a and cur[ch] > a and m[R.ERROR] == 0:
                    self._set_error(R.ERR_OVERFLOW)
        if self._th_nan or self._th_inf:
            self._glitch(k)
        _u32(m, R.PERIOD_MS, int(dur * self._skew))
        if not self.ready:
            self.ready = True
            m[R.V03_STATUS] = 1
            m[R.AC_FREQ] = 50
            _u16(m, R.AC_PERIOD, 10000)
            self._sync_status()
        self._thresholds(cur, ps)
        self._digest(cur, uu, ps, pfs)

    def _glitch(self, k):
        """NaN/Inf fault: one channel's P register of this commit is garbage."""
        m = self.mem
        ps = self._pubps
        for ch in range(3):
            _f32(m, R.P_REAL + 4 * ch, ps[ch])
        h = mix(self._hs, k, 0xBAD + 1)
        if h < self._th_nan + self._th_inf:
            ch = mix(self._hs, k, 0xBAD) % self.nch
            if h < self._th_nan:
                _f32(m, R.P_REAL + 4 * ch, float("nan"))
            else:
                _f32(m, R.P_REAL + 4 * ch, float("inf") if h & 1 else float("-inf"))

    def _thresholds(self, cur, ps):
        m = self.mem
        ti = m[R.THRESH_I_HI] | m[R.THRESH_I_HI + 1] << 8
        tp = m[R.THRESH_P_HI] | m[R.THRESH_P_HI + 1] << 8
        if ti == 0xFFFF and tp == 0xFFFF:
            return
        ev = m[R.EVENT_FLAGS]
        if ti != 0xFFFF and max(cur) * 100 > ti:
            ev |= R.EV_THRESH_I
        if tp != 0xFFFF and ps[0] + ps[1] + ps[2] > tp:
            ev |= R.EV_THRESH_P
        if ev != m[R.EVENT_FLAGS]:
            self._set_events(ev)

    def _digest(self, cur, u, ps, pfs):
        m = self.mem
        m[R.DIGEST] = m[R.STATUS]
        m[R.DIGEST + 1] = self.seq_val
        cfg = m[R.DIGEST_CONFIG]
        o = R.DIGEST + 2
        n = self.nch
        if cfg & 1:
            for ch in range(n):
                _u16(m, o, min(65535, int(cur[ch] * 100 + 0.5)))
                o += 2
        if cfg & 2:
            _u16(m, o, min(65535, int(u * 10 + 0.5)))
            o += 2
        if cfg & 4:
            for ch in range(n):
                v = int(round(ps[ch]))
                v = -32768 if v < -32768 else (32767 if v > 32767 else v)
                _u16(m, o, v & 0xFFFF)
                o += 2
        if cfg & 8:
            for ch in range(n):
                m[o] = min(100, int(abs(pfs[ch]) * 100 + 0.5))
                o += 1
        while o < R.DIGEST + 22:
            m[o] = 0
            o += 1

    # ---- status / error / events ----------------------------------------
    def _sync_status(self):
        m = self.mem
        m[R.STATUS] = (1 if self.ready else 0) | (2 if m[R.ERROR] else 0) | (4 if m[R.EVENT_FLAGS] else 0)

    def _set_error(self, e):
        if self.mem[R.ERROR] == R.ERR_CLONE:
            return
        self.mem[R.ERROR] = e
        self._sync_status()

    def _set_events(self, ev):
        self.mem[R.EVENT_FLAGS] = ev & 0xFF
        self._sync_status()

    def _reject(self, t):
        self._set_error(R.ERR_PARAM)
        self._push(t + 200, "err_ev", 0)

    # ---- bus-facing byte interface ----------------------------------------
    def acks(self, t):
        """Address-phase ACK at master time t (catches up first)."""
        if t < self._due:
            return t >= self.ack_from and t >= self.busy_until
        self._catch_up(t)
        return self.running and t >= self.ack_from and t >= self.busy_until

    def read_into(self, buf, hook=None):
        """Read len(buf) bytes from the pointer (one transaction)."""
        reg = self.ptr
        n = len(buf)
        if hook is None and reg + n <= 256 and self.auto_increment:
            # cached memoryview per (start, length): no allocation per read
            # (big-heap MicroPython pays dearly for multi-block allocations)
            v = self._views.get(reg << 9 | n)
            if v is None:
                v = self._views[reg << 9 | n] = memoryview(self.mem)[reg:reg + n]
            buf[:] = v
            self.ptr = (reg + n) & 0xFF
        else:
            self._read_slow(buf, hook)

    def _read_slow(self, buf, hook):
        n = len(buf)
        reg = self.ptr
        frozen = None
        if hook is not None and R.FREEZE_LO <= reg <= R.FREEZE_HI:
            frozen = bytes(self.mem[R.FREEZE_LO:R.FREEZE_HI + 1])
        for i in range(n):
            if i and hook is not None:
                hook(i)
            r = (reg + i) & 0xFF if self.auto_increment else reg
            if frozen is not None and R.FREEZE_LO <= r <= R.FREEZE_HI:
                buf[i] = frozen[r - R.FREEZE_LO]
            else:
                buf[i] = self.mem[r]
        if self.auto_increment:
            self.ptr = (reg + n) & 0xFF

    def write(self, reg, val, t):
        """One data byte written to `reg` (later bytes of a write are dropped)."""
        self.ptr = reg
        self._set_error(R.ERR_OK)
        if not self._apply(reg, val, t):
            self._reject(t)

    def _apply(self, reg, v, t):
        m = self.mem
        if reg == R.COMMAND:
            return self._command(v, t)
        if reg == R.CT_MODEL:
            if v > 7:
                return False
            m[reg] = v
            if self.version < 0x04:  # pre-v1.3: a direct write also binds ch0
                self.ct[0] = v
                m[R.CT_MODEL_CH0] = v
                self._set_events(m[R.EVENT_FLAGS] | R.EV_CONFIG_CHANGED)
            return True
        if reg == R.PHASE_SAMPLES or reg == R.PHASE_FRACT:
            if self.mode == 0 or (reg == R.PHASE_SAMPLES and v > 30):
                return False
            m[reg] = v
            return True
        if reg == R.LUT_QUERY_SLOT:
            if v > 3:
                return False
            m[reg] = v
            self._lut_view(v)
            return True
        if reg == R.CAPTURE_PAGE:
            if v > 7:
                return False
            m[reg] = v
            return True
        if reg == R.SENSOR_CLASS:
            if v > 3:
                return False
            if v != m[reg]:
                m[R.CT_MODEL] = 0
                self._set_events(m[R.EVENT_FLAGS] | R.EV_CONFIG_CHANGED)
            m[reg] = v
            return True
        if reg == R.FLEET_CONFIG or reg == R.GROUP_ID:
            if reg == R.FLEET_CONFIG and v & 0xFE:
                return False
            m[reg] = v
            self._set_events(m[R.EVENT_FLAGS] | R.EV_CONFIG_CHANGED)
            return True
        if reg == R.DIGEST_CONFIG:
            if v & ~(0x0F if self.has_u else 0x01):
                return False
            m[reg] = v
            return True
        if reg == R.EVENT_FLAGS:
            self._set_events(m[reg] & ~v)
            return True
        if reg == R.EVENT_MASK or R.THRESH_I_HI <= reg <= R.THRESH_P_HI + 1:
            m[reg] = v
            return True
        if reg == R.I2C_ADDRESS:
            if v < 0x08 or v > 0x77 or v == self.addr:
                return False
            m[reg] = v
            return True
        if reg == R.ADDR_COMMIT_MAGIC:
            self._magic_t = t if v == R.ADDR_MAGIC else None
            return v == R.ADDR_MAGIC
        if R.LABEL <= reg < R.LABEL + 8:
            m[reg] = v
            self._set_events(m[R.EVENT_FLAGS] | R.EV_CONFIG_CHANGED)
            return True
        if R.NOISE_FLOOR_U <= reg < R.NOISE_FLOOR_U + 8 or reg >= R.GAIN_U:
            m[reg] = v  # RAM takes factory values; only SAVE_GAINS would persist
            return True
        return False

    def _lut_view(self, slot):
        # factory debug view of LUT slot n: BASIC tier, plausible INL/DNL
        m = self.mem
        m[R.LUT_VIEW_TIER] = 0
        m[R.LUT_VIEW_POINTS_LOG2] = 9 if slot < 2 else 8
        _u16(m, R.LUT_VIEW_INL_MAX, 2 + mix(self._hs, slot, 0x1A) % 5)
        _u16(m, R.LUT_VIEW_DNL_MAX, 1 + mix(self._hs, slot, 0x1B) % 2)

    def _command(self, op, t):
        m = self.mem
        if op == R.CMD_NOP:
            return True
        if op == R.CMD_RESET:
            self._start_reset(t, R.RC_SW)
            return True
        if op == R.CMD_LATCH_PERIOD:
            self._latch(t)
            return True
        if R.CMD_SET_CT_MODEL_CH0 <= op <= R.CMD_SET_CT_MODEL_CH0 + 2:
            ch = op - R.CMD_SET_CT_MODEL_CH0
            code = m[R.CT_MODEL]
            sc = m[R.SENSOR_CLASS]
            ok = _CT_V13[sc] if self.version >= 0x04 else (_CT_V12 if sc else ())
            if ch >= self.nch or code not in ok:
                return False
            self.ct[ch] = code
            m[R.CT_MODEL_CH0 + ch] = code
            self._set_events(m[R.EVENT_FLAGS] | R.EV_CONFIG_CHANGED)
            return True
        if op == R.CMD_COMMIT_ADDR:
            armed = self._magic_t is not None and t - self._magic_t <= 5000
            self._magic_t = None
            cand = m[R.I2C_ADDRESS]
            if not armed or cand < 0x08 or cand > 0x77 or cand == self.addr:
                return False
            self.flash["addr"] = cand
            self.busy_until = t + _FLASH_SETTLE[op]
            return True
        if op == R.CMD_CLEAR_ERROR:
            self._set_error(R.ERR_OK)
            self._set_events(m[R.EVENT_FLAGS] & ~R.EV_ERROR)
            return True
        if op == R.CMD_SAVE_USER_CONFIG:
            fl = self.flash
            fl["sensor_class"] = m[R.SENSOR_CLASS]
            fl["ct"] = list(self.ct)
            fl["fleet"] = m[R.FLEET_CONFIG]
            fl["group"] = m[R.GROUP_ID]
            fl["label"] = bytes(m[R.LABEL:R.LABEL + 8])
            fl["saved"] = True
            self.busy_until = t + _FLASH_SETTLE[op]
            return True
        if op == R.CMD_SAVE_GAINS or op == R.CMD_FACTORY_RESET:
            if self.mode == 0:
                return False  # blocked in production
            self.busy_until = t + _FLASH_SETTLE[op]
            if op == R.CMD_FACTORY_RESET:
                fl = self.flash
                fl["sensor_class"] = 0
                fl["ct"] = [0, 0, 0]
                fl["fleet"] = 0
                fl["group"] = 0
                fl["label"] = bytes(8)
                fl["saved"] = False
                self._start_reset(t, R.RC_SW, _FLASH_SETTLE[op])
            return True
        if op == R.CMD_CAPTURE_RAW:
            m[R.CAPTURE_STATUS] = 0
            self._push(t + 80, "capture", 0)
            return True
        if op in _FACTORY_OPS and self.mode != 0:
            return True
        return False

    def _start_reset(self, t, cause, delay=RESET_BOOT_MS):
        self.running = False
        self.ready = False
        self.ack_from = t + delay + self.boot_nack_ms
        self._push(t + delay, "boot", cause)

    # ---- period latch ---------------------------------------------------
    def _latch(self, t):
        if self.acc_n == 0:  # empty period: keep accumulator and start
            data = None
        else:
            n = self.acc_n
            avg = [s / n / 1e6 for s in self.acc_sum]
            data = (avg, self.acc_max / 1e6, n, int((t - self.latch_t) * self._skew))
            self.latch_t = t
            self.acc_sum = [0, 0, 0]
            self.acc_n = 0
            self.acc_max = 0
        self.mem[R.PERIOD_VALID] = 0
        self._push(t + self.latch_delay_ms, "latch_pub", data)

    def _latch_publish(self, data):
        m = self.mem
        if data is None:
            m[R.PERIOD_VALID] = 0
            return
        avg, mx, n, dt = data
        _f32(m, R.PERIOD_AVG_P, avg[0])
        _f32(m, R.PERIOD_AVG_P_CH1, avg[1])
        _f32(m, R.PERIOD_AVG_P_CH2, avg[2])
        _f32(m, R.PERIOD_MAX_P, mx)
        _u32(m, R.PERIOD_COMMIT_CNT, n)
        _u32(m, R.PERIOD_LATCH_MS, dt)
        m[R.PERIOD_VALID] = 1
        self._set_events(m[R.EVENT_FLAGS] | R.EV_PERIOD_READY)

    def gc_frame(self, group, tick, t):
        """General-call latch frame (bus already checked the A5 27 header)."""
        if not self.running or t < self.ack_from or t < self.busy_until or not self.gc_active:
            return
        if group != 0 and group != self.mem[R.GROUP_ID]:
            return
        _u16(self.mem, R.GC_TICK, tick)
        if self.has_u:
            _u16(self.mem, R.ZC_OFFSET, 1000 + mix(self._hs, tick, 0x2C) % 9000)
        self._latch(t)

    # ---- public helpers -------------------------------------------------
    def sync(self, now=None):
        """Bring the module up to master time `now` (default: clock now)."""
        self._catch_up(self._now(now))

    @property
    def seq(self):
        self.sync()
        return self.seq_val

    @property
    def drdy_count(self):
        """DRDY falling edges (= RT commits) since creation, across reboots."""
        self.sync()
        return self.drdy_count_total

    def drdy_level(self, now=None):
        """DRDY pin: 0 while held by alarm mode (EVENT_FLAGS & EVENT_MASK) or
        during the ~10 us commit pulse (the whole commit millisecond here)."""
        t = self._now(now)
        self._catch_up(t)
        m = self.mem
        if not self.running:
            return 1
        if m[R.EVENT_FLAGS] & m[R.EVENT_MASK]:
            return 0
        return 0 if self.last_commit_t == t else 1

    def force_commit(self):
        """Test hook: an extra RT commit right now (window = last 200 ms of the
        profile): new registers, SEQ+1, DRDY edge; accumulator untouched."""
        t = self._now(None)
        self._catch_up(t)
        if not self.running:
            return
        self.profile.window(t - self.window_ms, t, self.nch, self._pubw)
        self._puba = t - self.window_ms
        self._pubb = t
        self._pubk = -1
        self.seq_val = (self.seq_val + 1) & 0xFF
        self.drdy_count_total += 1
        self.last_commit_t = t
        self._publish()
        if self.on_drdy is not None:
            self.on_drdy(self, t)

    def reboot(self, now=None, cause=R.RC_POR):
        """Power-cycle now: RAM back to power-on state, boot timeline restarts."""
        t = self._now(now)
        self._catch_up(t)
        self._power_on(t, cause)

    def truth_mwms(self, ch, now=None):
        """Exact (import, export) mW*ms through this channel since creation."""
        return self.profile.energy_mwms(ch, self.created_ms, self._now(now))

    def basic_mwms(self, ch):
        """Chip-view consumption: sum over committed windows of max(window
        energy, 0) in mW*ms (BASIC clamping; 0 on I-variants)."""
        self.sync()
        return self.basic[ch]

    def peek(self, reg, n=1):
        """Register bytes without a bus transaction (no faults, no NACK)."""
        self.sync()
        return bytes(self.mem[reg:reg + n])
