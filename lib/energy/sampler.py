"""Sampler: reads every rbAmp module once per RT window and feeds the
integer engine. Driven by explicit timestamps: poll(now) does what is due
and returns how many ms until it wants to be called again, so the node can
run it under asyncio or in virtual time. Rules: docs/energy.md."""
try:
    from micropython import const
except ImportError:  # CPython
    def const(__x):
        return __x

from energy.engine import Meter, MAX_DT_MS, P_MAX_MW

BAD = const(-(1 << 30))           # == rbamp.BAD (driver's invalid-value sentinel)
EV_RESET = const(0x20)            # EVENT_FLAGS bit5: module rebooted
WINDOW_MS = const(200)            # rbAmp RT window (fixed, 50 and 60 Hz)
GAP_LIMIT_MS = const(2000)        # default bridging limit
RETRY_MS = const(4)               # re-poll when SEQ has not advanced yet
FAULT_RETRY_MS = const(50)        # re-poll after an I/O error / invalid data
_IDLE_MS = const(1000)            # poll() answer with nothing scheduled
_ACQ_LEAD_MS = const(20)          # phase pull-in per window before lock
_SEQ_SLACK = const(2)             # SEQ advance beyond time-expected -> jump
_CMASK = const(0x1FFFFFFF)        # counters wrap at 2**29 (x+1 stays a small int); reads: ~3.4 years

TIER_STANDARD = const(1)
CAP_EXT_ADDRESSING = const(0x0001)


def has_export_accumulators(dev):
    """True if the module says it keeps its own export accumulators
    (STANDARD/PRO tier with the extended register space)."""
    return getattr(dev, "tier", 0) >= TIER_STANDARD and bool(getattr(dev, "capability", 0) & CAP_EXT_ADDRESSING)


class MasterSide:
    """Integrate signed RT power on the master (every tier; the only way
    on BASIC, whose own period accumulator is clamped >= 0)."""
    mode = "master"

    def __init__(self, dev):
        self.note = ""
        if has_export_accumulators(dev):
            self.note = "module accumulators present but unused (not supported yet)"

    def window(self, s, m, obs, u):
        """One new window of module state m: `u` ms unobserved (missed
        windows / faults) followed by `obs` ms of this window's power."""
        meter = m.meter
        p = m.dev.p_mw
        for ch in range(m.nch):
            if not m.enabled[ch]:
                continue
            v = p[ch]
            if v == BAD or v > P_MAX_MW or v < -P_MAX_MW:
                m.bad[ch] = (m.bad[ch] + 1) & _CMASK
                s._unobserved(m, ch, obs + u)
                continue
            v = s._shape(m, ch, v)
            if u:
                s._unobserved(m, ch, u)
            pd = m.pend[ch]
            if pd:
                s._bridge(m, ch, pd)
            m.ingap[ch] = False
            meter.add(ch, v, obs)
            m.hold[ch] = v


class ModuleSide:
    """Seam for STANDARD/PRO modules that report import/export energy
    themselves. No such firmware exists; its register layout is unknown,
    so this declines instead of guessing. A future version would implement
    window(s, m, obs, u) from the module's accumulator deltas."""
    mode = "module"
    note = ""

    def __init__(self, dev):
        raise NotImplementedError("module-side export accumulators: no rbAmp firmware provides them "
                                  "yet (tier %r); use mode='master'" % (getattr(dev, "tier_name", "?"),))

    def window(self, s, m, obs, u):
        raise NotImplementedError("module-side accumulators")


def select_strategy(dev, want="auto"):
    """'auto' and 'master' -> MasterSide; 'module' -> ModuleSide (raises)."""
    if want == "module":
        return ModuleSide(dev)
    if want not in ("auto", "master"):
        raise ValueError("mode must be 'auto', 'master' or 'module'")
    return MasterSide(dev)


def _default_clock():
    import time
    if hasattr(time, "ticks_ms"):
        return time                       # a board: the time module is the seam
    from clock import Ticks               # CPython master: ms from monotonic()
    mono = getattr(time, "monotonic")
    return Ticks(source=lambda: int(mono() * 1000))


class _Mod:
    """Per-module state and counters (plain attributes; shown by STATUS)."""

    def __init__(self, dev, meter, nch, drdy, strategy, window_ms):
        self.dev = dev
        self.meter = meter
        self.nch = nch
        self.drdy = drdy
        self.strategy = strategy
        self.window = window_ms
        self.flag = False             # set by on_drdy() (IRQ)
        self.drdy_lost = False        # DRDY mode without edges: cadence fallback
        self.stamp = 0                # ticks of the last DRDY edge
        self.armed = False            # t_due set by the first poll()
        self.started = False
        self.locked = False
        self.outage = False
        self.t_last = 0               # everything up to here is accounted
        self.t_read = 0               # last read that found a new window
        self.t_due = 0
        self.pull = 0
        self.el_s = 0                 # elapsed since the first anchor
        self.el_ms = 0
        # per-channel options
        self.enabled = [True] * nch
        self.sign = [1] * nch
        self.no_load = [0] * nch
        # per-channel integration state
        self.hold = [BAD] * nch       # last good power (bridging)
        self.pend = [0] * nch         # unobserved ms awaiting bridge/gap decision
        self.ingap = [False] * nch
        # per-channel counters
        self.bad = [0] * nch
        self.bridged_s = [0] * nch
        self.bridged_ms = [0] * nch
        self.gap_events = [0] * nch
        # per-module counters
        self.reads = 0
        self.windows = 0
        self.early = 0
        self.missed = 0
        self.stale = 0
        self.invalid = 0
        self.io_errors = 0
        self.reboots = 0
        self.seq_jumps = 0
        self.outages = 0
        self.drdy_edges = 0
        self.drdy_misses = 0
        self.last_events = 0


class Sampler:
    def __init__(self, clock=None, gap_limit_ms=GAP_LIMIT_MS, retry_ms=RETRY_MS,
                 fault_retry_ms=FAULT_RETRY_MS):
        if clock is None:
            clock = _default_clock()
        if not 0 <= gap_limit_ms <= MAX_DT_MS:
            raise ValueError("gap_limit_ms must be 0..%d" % MAX_DT_MS)
        self._ms = clock.ticks_ms
        self._diff = clock.ticks_diff
        self._add = clock.ticks_add
        self.gap_limit = gap_limit_ms
        self.retry = retry_ms
        self.fault_retry = fault_retry_ms
        self.mods = []
        # bus health for node.app.BusGuard: reads that went through, failed
        # with a bus timeout (SDA held: a wedged bus) or with anything else
        self.bus_ok = 0
        self.bus_to = 0
        self.bus_other = 0

    # ------------------------------------------------------------ setup
    def add_module(self, dev, drdy=False, mode="auto", meter=None, channels=None, window_ms=WINDOW_MS):
        """Register a begun driver; returns its index. drdy=True: call
        on_drdy(index) from the pin IRQ. meter: an energy.Meter to continue
        (e.g. restored by the store)."""
        strategy = select_strategy(dev, mode)
        nch = channels or getattr(dev, "channels", 0) or len(dev.p_mw)
        if meter is None:
            meter = Meter(nch)
        elif meter.nch < nch:
            raise ValueError("meter has fewer channels than the module")
        if window_ms <= 0 or window_ms * 2 > MAX_DT_MS:
            raise ValueError("window_ms out of range")
        self.mods.append(_Mod(dev, meter, nch, drdy, strategy, window_ms))
        return len(self.mods) - 1

    def set_channel(self, i, ch, invert=None, enabled=None, no_load_mw=None):
        """Per-channel options: invert (reversed CT), enabled (a disabled
        channel is neither integrated nor timed), no-load threshold in mW
        (|p| below it counts as 0; 0 = off)."""
        m = self.mods[i]
        if invert is not None:
            m.sign[ch] = -1 if invert else 1
        if enabled is not None:
            m.enabled[ch] = bool(enabled)
        if no_load_mw is not None:
            if not 0 <= no_load_mw <= P_MAX_MW:
                raise ValueError("no_load_mw out of range")
            m.no_load[ch] = no_load_mw

    def mode(self, i):
        return self.mods[i].strategy.mode

    def meter(self, i):
        return self.mods[i].meter

    def on_drdy(self, i=-1):
        """DRDY falling edge (IRQ-safe, allocation-free). i=-1: a shared
        wired-OR line, flag every DRDY-mode module."""
        t = self._ms()
        if i >= 0:
            m = self.mods[i]
            m.flag = True
            m.stamp = t
            m.drdy_edges = (m.drdy_edges + 1) & _CMASK
            return
        # A shared wired-OR line falls once per module window, each module
        # at its own phase: an edge belongs to a module only if that
        # module's next window is due (its last anchor is about one window
        # old), so each module is read once per window, not on every edge.
        diff = self._diff
        for m in self.mods:
            if m.drdy:
                w = m.window
                if m.started and not m.drdy_lost and diff(t, m.t_last) < w - (w >> 4):
                    continue
                m.flag = True
                m.stamp = t
                m.drdy_edges = (m.drdy_edges + 1) & _CMASK

    # ------------------------------------------------------------ driving
    def poll(self, now):
        """Service every module that is due (or flagged by DRDY) at tick
        `now`; return ms until the next call is wanted (>= 0)."""
        wait = _IDLE_MS
        diff = self._diff
        for m in self.mods:
            if not m.armed:
                # first call: read at once, or give DRDY one window and a half
                m.armed = True
                m.t_due = self._add(now, m.window + (m.window >> 1)) if m.drdy else now
            if m.flag or diff(now, m.t_due) >= 0:
                self._service(m, now)
            d = diff(m.t_due, now)
            if d < wait:
                wait = d
        return wait if wait > 0 else 0

    def _service(self, m, now):
        diff = self._diff
        flagged = m.flag
        m.flag = False
        dev = m.dev
        m.reads = (m.reads + 1) & _CMASK
        reboot = False
        try:
            n = dev.read_rt()
            if dev.events_pending:
                f = dev.check_events()
                m.last_events = f
                if f & EV_RESET:
                    reboot = True
        except OSError as e:
            m.io_errors = (m.io_errors + 1) & _CMASK
            en = e.args[0] if e.args else 0
            if en == 110 or en == 116:     # ETIMEDOUT (newlib 116): SDA held
                self.bus_to = (self.bus_to + 1) & _CMASK
            else:
                self.bus_other = (self.bus_other + 1) & _CMASK
            self._fault(m, now)
            m.t_due = self._add(now, self.fault_retry)
            return
        self.bus_ok = (self.bus_ok + 1) & _CMASK
        if n < 0:
            m.invalid = (m.invalid + 1) & _CMASK
            self._fault(m, now)
            m.t_due = self._add(now, self.fault_retry)
            return
        w = m.window
        if reboot and m.started:
            m.reboots = (m.reboots + 1) & _CMASK
            m.locked = False
            n = 1                      # data is fresh; the SEQ gap means nothing
        if n == 0 and m.started:
            if diff(now, m.t_read) < w + (w >> 1):
                m.early = (m.early + 1) & _CMASK   # commit not yet due: look again shortly
                m.locked = True
                m.t_due = self._add(now, w if m.drdy and not m.drdy_lost else self.retry)
                return
            m.stale = (m.stale + 1) & _CMASK   # module stopped committing windows
            self._fault(m, now)
            m.t_due = self._add(now, self.fault_retry)
            return
        # a new window: anchor at the DRDY edge when we have one
        t = now
        if flagged and m.drdy:
            m.drdy_lost = False
            d = diff(now, m.stamp)
            if 0 <= d < w:
                t = m.stamp
        elif m.drdy and m.started:
            # no edge for this window (line stuck low in alarm mode, or not
            # wired): keep to the cadence until edges come back
            m.drdy_misses = (m.drdy_misses + 1) & _CMASK
            m.drdy_lost = True
        if not m.started:
            self._anchor(m, t)
        else:
            dt = diff(t, m.t_last)
            if dt < 0:
                dt = 0
            normal = n == 1 and not reboot and not m.outage and dt <= w + (w >> 1)
            if n > 1 and not reboot:
                if n > (dt + (w >> 1)) // w + _SEQ_SLACK:
                    m.seq_jumps = (m.seq_jumps + 1) & _CMASK   # SEQ leapt further than time allows
                    m.locked = False
                else:
                    m.missed = (m.missed + n - 1) & _CMASK
            obs = dt
            if not normal and dt > w:
                obs = w
            m.strategy.window(self, m, obs, dt - obs)
            m.t_last = t
            self._elapse(m, dt)
            m.outage = False
        m.windows = (m.windows + 1) & _CMASK
        m.t_read = now
        self._schedule(m, now)

    def _schedule(self, m, now):
        w = m.window
        if m.drdy and not m.drdy_lost:
            # wait for the edge; poll anyway if it does not come
            m.t_due = self._add(now, w + (w >> 1))
            return
        if not m.locked:
            lead = _ACQ_LEAD_MS
        else:
            m.pull = (m.pull + 1) & 7
            lead = 1 if m.pull == 0 else 0   # creep 1 ms early per 8 windows
        m.t_due = self._add(now, w - lead)

    def _anchor(self, m, t):
        m.started = True
        m.t_last = t
        dev = m.dev
        for ch in range(m.nch):
            v = dev.p_mw[ch]
            if m.enabled[ch] and v != BAD and -P_MAX_MW <= v <= P_MAX_MW:
                m.hold[ch] = self._shape(m, ch, v)

    def _shape(self, m, ch, v):
        if m.sign[ch] < 0:
            v = -v
        thr = m.no_load[ch]
        if thr and -thr < v < thr:
            v = 0
        return v

    def _elapse(self, m, dt):
        ms = m.el_ms + dt
        if ms >= 1000:
            s = ms // 1000
            m.el_s += s
            ms -= s * 1000
        m.el_ms = ms

    def _bridge(self, m, ch, pd):
        m.pend[ch] = 0
        h = m.hold[ch]
        if h == BAD:                   # nothing good seen yet: cannot bridge
            m.meter.add_gap(ch, pd)
            m.gap_events[ch] = (m.gap_events[ch] + 1) & _CMASK
            return
        m.meter.add(ch, h, pd)         # pd <= gap_limit <= MAX_DT_MS
        ms = m.bridged_ms[ch] + pd
        if ms >= 1000:
            s = ms // 1000
            m.bridged_s[ch] += s
            ms -= s * 1000
        m.bridged_ms[ch] = ms

    def _unobserved(self, m, ch, u):
        if m.ingap[ch]:
            m.meter.add_gap(ch, u)
            return
        pd = m.pend[ch] + u
        if pd > self.gap_limit:
            m.meter.add_gap(ch, pd)
            m.pend[ch] = 0
            m.ingap[ch] = True
            m.gap_events[ch] = (m.gap_events[ch] + 1) & _CMASK
        else:
            m.pend[ch] = pd

    def _fault(self, m, now):
        # nothing new from the module at `now`. Decide as soon as the
        # unobserved stretch can no longer be bridged; until then wait.
        if not m.started:
            return
        dt = self._diff(now, m.t_last)
        if dt <= 0:
            return
        if not m.outage:
            if dt - m.window <= self.gap_limit:
                return
            m.outage = True
            m.outages = (m.outages + 1) & _CMASK
            m.locked = False
        for ch in range(m.nch):
            if m.enabled[ch]:
                self._unobserved(m, ch, dt)
        m.t_last = now
        self._elapse(m, dt)

    # ------------------------------------------------------------ read-out
    def elapsed_ms(self, i):
        m = self.mods[i]
        return m.el_s * 1000 + m.el_ms

    def pending_ms(self, i, ch):
        return self.mods[i].pend[ch]

    def status(self, i):
        """Counters for the STATUS command (allocates; not for the hot path)."""
        m = self.mods[i]
        return {
            "mode": m.strategy.mode, "note": m.strategy.note, "drdy": m.drdy,
            "drdy_lost": m.drdy_lost, "locked": m.locked,
            "reads": m.reads, "windows": m.windows, "early": m.early, "missed": m.missed,
            "stale": m.stale, "invalid": m.invalid, "io_errors": m.io_errors,
            "reboots": m.reboots, "seq_jumps": m.seq_jumps, "outages": m.outages,
            "drdy_edges": m.drdy_edges, "drdy_misses": m.drdy_misses,
            "elapsed_ms": self.elapsed_ms(i),
            "bad": list(m.bad), "gap_events": list(m.gap_events),
            "bridged_ms": [m.bridged_s[c] * 1000 + m.bridged_ms[c] for c in range(m.nch)],
            "pending_ms": list(m.pend),
        }
