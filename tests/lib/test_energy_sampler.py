"""Sampler on all three runtimes against a scripted fake module (the
simulator-based runs are in test_energy_sim.py / tests/host)."""
import mptest
from clock import Ticks, PERIOD
from energy import Meter
from energy.sampler import Sampler, BAD, select_strategy, MasterSide

W = 200


class FakeDev:
    """Minimal driver stand-in: windows commit every W ms of absolute time
    `t` (advanced by the test) at `phase`; power(k, ch) gives window k's mW.
    Fault hooks: io_fail/invalid (bool), bad[ch] (bool), reboot()."""

    def __init__(self, power, nch=2, phase=37, tier=0, capability=0x079E):
        self.t = 1000
        self.power = power
        self.phase = phase
        self.channels = nch
        self.p_mw = [0, 0, 0]
        self.events_pending = False
        self.tier = tier
        self.tier_name = ("BASIC", "STANDARD", "PRO")[tier]
        self.capability = capability
        self.io_fail = False
        self.invalid = False
        self.bad = [False, False, False]
        self.boot_t = -100000
        self._flags = 0
        self._last = -1
        self.rt_reads = 0
        self.ev_reads = 0

    def committed(self):
        # index of the last committed window (time-driven, like the simulator)
        return (self.t - self.phase) // W

    def reboot(self):
        # SEQ restarts at the boot; first commit one window later
        self.phase = self.t
        self._flags |= 0x20

    def read_rt(self):
        self.rt_reads += 1
        if self.io_fail:
            raise OSError(5)
        self.events_pending = self._flags != 0
        k = self.committed()
        if self.invalid or k < 0:
            return -1
        seq = k & 0xFF
        i = 0
        while i < self.channels:
            self.p_mw[i] = BAD if self.bad[i] else self.power(k, i)
            i += 1
        last = self._last
        self._last = seq
        if last < 0:
            return 1
        return (seq - last) & 0xFF

    def check_events(self):
        self.ev_reads += 1
        f = self._flags
        self._flags = 0
        self.events_pending = False
        if f & 0x20:
            self._last = -1
        return f

    def truth(self, ch, t0, t1):
        """Exact mW*ms of window powers over absolute time (t0, t1]."""
        imp = exp = 0
        t = t0
        while t < t1:
            # window k covers (phase + (k-1)*W, phase + k*W]
            k = (t - self.phase) // W + 1
            end = self.phase + k * W
            if end > t1:
                end = t1
            p = self.power(k, ch)
            if p > 0:
                imp += p * (end - t)
            else:
                exp -= p * (end - t)
            t = end
        return imp, exp


def _steps(pw):
    # deterministic stepwise powers, both signs
    def power(k, ch):
        x = (k * 7919 + ch * 104729) % 1000
        return (x - 400) * 4001 + ch * 13
    return power


def _mwms(meter, ch):
    from energy import Q_MWMS
    return (meter.import_total_mwh(ch) * Q_MWMS + meter.import_rem[ch],
            meter.export_total_mwh(ch) * Q_MWMS + meter.export_rem[ch])


class Rig:
    """Virtual time: a Ticks clock that starts near the 2**30 wrap and the
    fake's absolute time, advanced together."""

    def __init__(self, dev, start=PERIOD - 3000, drdy=False, **kw):
        self.clk = Ticks(start=start)
        self.dev = dev
        self.s = Sampler(self.clk, **kw)
        self.i = self.s.add_module(dev, drdy=drdy)
        self.drdy = drdy
        self.t0 = None

    def run(self, ms, hook=None):
        """Advance `ms` of virtual time, calling poll when asked (and on
        DRDY edges in drdy mode)."""
        dev = self.dev
        end = dev.t + ms
        nxt = 0
        while dev.t < end:
            if hook is not None:
                hook(self)
            now = self.clk.ticks_ms()
            d = self.s.poll(now)
            if self.t0 is None and self.s.mods[self.i].started:
                self.t0 = self.s.mods[self.i].t_last
                self.abs0 = dev.t
            step = d if d > 0 else 1
            if dev.t + step > end:
                step = end - dev.t
            if self.drdy:
                # next commit edge in absolute time
                nk = dev.phase + (dev.committed() + 1) * W
                if nk - dev.t <= step:
                    step = nk - dev.t
                    self.clk.advance(step)
                    dev.t += step
                    self.s.on_drdy(self.i)
                    continue
            self.clk.advance(step)
            dev.t += step
        self.s.poll(self.clk.ticks_ms())    # an edge on the last step

    def invariant(self):
        s = self.s
        m = s.mods[self.i]
        el = s.elapsed_ms(self.i)
        for ch in range(m.nch):
            if not m.enabled[ch]:
                continue
            mt = m.meter
            assert 0 <= m.pend[ch] <= s.gap_limit
            assert mt.int_time_ms(ch) + mt.gap_time_ms(ch) + m.pend[ch] == el, (
                ch, mt.int_time_ms(ch), mt.gap_time_ms(ch), m.pend[ch], el)
        # every int the sampler keeps is a 31-bit small int
        for v in m.__dict__.values():
            if isinstance(v, int):
                mptest.small(v)
            elif isinstance(v, list):
                for x in v:
                    if isinstance(x, int):
                        mptest.small(x)


def test_drdy_exact_for_power_constant_per_window():
    dev = FakeDev(_steps(1))
    rig = Rig(dev, drdy=True)
    rig.run(60_000)                     # crosses the 2**30 ticks wrap at 3 s
    m = rig.s.mods[0]
    assert m.windows >= 299 and m.missed == 0 and m.drdy_misses == 0
    assert m.reads == m.windows         # one read per window
    # anchor was the first commit edge; last edge is the last commit
    a = dev.phase + (rig.abs0 - dev.phase) // W * W
    b = dev.phase + dev.committed() * W
    for ch in (0, 1):
        assert _mwms(m.meter, ch) == dev.truth(ch, a, b)
    rig.invariant()
    assert m.meter.gap_time_ms(0) == 0 and m.meter.int_time_ms(0) == b - a


def test_cadence_one_read_per_window_and_bounded_error():
    dev = FakeDev(_steps(2), phase=151)
    rig = Rig(dev)
    rig.run(120_000)
    m = rig.s.mods[0]
    assert m.missed == 0 and m.stale == 0 and m.io_errors == 0
    assert m.locked
    # after lock-in, early re-polls are rare: < 10 % extra reads
    assert m.reads < m.windows * 1.1 + 20, (m.reads, m.windows)
    assert m.windows >= 595
    rig.invariant()
    # error vs truth: each window's power is held at most RETRY+1 ms late
    a = rig.abs0
    b = dev.t
    for ch in (0, 1):
        got = _mwms(m.meter, ch)
        want = dev.truth(ch, a, b)
        bound = 0
        for k in range(dev.committed() + 2):
            bound += abs(dev.power(k, ch) - dev.power(k - 1, ch)) * 25
        assert abs(got[0] - want[0]) <= bound and abs(got[1] - want[1]) <= bound


def test_same_window_never_integrated_twice():
    dev = FakeDev(lambda k, ch: 1_000_000)
    rig = Rig(dev)
    rig.run(2000)
    m = rig.s.mods[0]
    w0 = m.windows
    t0 = m.meter.int_time_ms(0)
    # hammer poll without time moving: SEQ does not advance -> nothing new
    now = rig.clk.ticks_ms()
    for _ in range(50):
        m.t_due = now
        rig.s.poll(now)
    assert m.windows == w0 and m.meter.int_time_ms(0) == t0
    assert m.early >= 50


def test_missed_windows_counted_and_bridged():
    dev = FakeDev(lambda k, ch: 2_000_000 if ch == 0 else -500_000)
    rig = Rig(dev, drdy=False)
    rig.run(5000)
    m = rig.s.mods[0]
    # the node stalls 1 s: the next read sees SEQ +5
    rig.clk.advance(1000)
    dev.t += 1000
    rig.run(3000)
    assert m.missed == 4, m.missed
    assert m.bridged_ms[0] + m.bridged_s[0] * 1000 >= 700
    rig.invariant()
    assert m.meter.gap_time_ms(0) == 0
    # constant power: bridging is exact
    got = _mwms(m.meter, 0)
    assert got == (2_000_000 * m.meter.int_time_ms(0), 0)
    assert _mwms(m.meter, 1) == (0, 500_000 * m.meter.int_time_ms(1))


def test_short_fault_bridged_long_fault_gap():
    dev = FakeDev(lambda k, ch: 3_000_000)
    rig = Rig(dev)
    rig.run(2000)
    m = rig.s.mods[0]
    dev.io_fail = True
    rig.run(1500)                       # < 2 s: bridged
    dev.io_fail = False
    rig.run(1000)
    assert m.io_errors > 0 and m.gap_events == [0, 0] and m.outages == 0
    assert m.meter.gap_time_ms(0) == 0
    rig.invariant()
    dev.invalid = True                  # -1: no valid data for 5 s -> gap
    rig.run(5000)
    rig.invariant()
    dev.invalid = False
    rig.run(1000)
    rig.invariant()
    assert m.invalid > 0 and m.outages == 1 and m.gap_events == [1, 1]
    g = m.meter.gap_time_ms(0)
    assert 4800 <= g <= 5300, g
    assert _mwms(m.meter, 0)[0] == 3_000_000 * m.meter.int_time_ms(0)


def test_bad_channel_bridged_and_others_unaffected():
    dev = FakeDev(lambda k, ch: 1_000_000 * (ch + 1))
    rig = Rig(dev, drdy=True)
    rig.run(1000)
    dev.bad[1] = True
    rig.run(1000)
    dev.bad[1] = False
    rig.run(1000)
    m = rig.s.mods[0]
    assert m.bad == [0, 5]
    assert m.meter.int_time_ms(0) == m.meter.int_time_ms(1) == rig.s.elapsed_ms(0)
    assert rig.s.status(0)["bridged_ms"] == [0, 1000]
    dev.bad[0] = True
    rig.run(2400)
    rig.invariant()
    assert m.gap_events == [1, 0] and m.pend[0] == 0
    dev.bad[0] = False
    rig.run(400)
    rig.invariant()
    assert m.meter.gap_time_ms(0) == 2400


def test_reboot_detected_without_double_counting():
    dev = FakeDev(lambda k, ch: 1_500_000, phase=50)
    rig = Rig(dev)
    rig.run(3000)
    m = rig.s.mods[0]
    dev.reboot()
    rig.run(3000)
    assert m.reboots == 1 and dev.ev_reads == 1
    assert m.seq_jumps == 0
    rig.invariant()
    # constant power: everything integrated exactly once
    assert _mwms(m.meter, 0) == (1_500_000 * m.meter.int_time_ms(0), 0)
    assert m.meter.gap_time_ms(0) == 0
    # a SEQ leap without the event bit is also caught
    dev.phase -= 40 * W
    rig.run(1000)
    assert m.seq_jumps == 1 and m.missed == 0
    rig.invariant()


def test_drdy_without_edges_falls_back_to_cadence():
    dev = FakeDev(_steps(6), phase=90)
    rig = Rig(dev, drdy=True)
    rig.run(2000)
    m = rig.s.mods[0]
    w0, r0 = m.windows, m.reads
    rig.drdy = False                    # line stuck low: no more edges
    rig.run(20_000)
    assert m.drdy_lost and m.missed == 0 and m.stale == 0
    assert m.windows - w0 >= 98
    assert m.reads - r0 <= (m.windows - w0) * 1.15 + 10, (m.reads - r0, m.windows - w0)
    rig.drdy = True                     # edges are back: anchored on them again
    rig.run(2000)
    assert not m.drdy_lost
    rig.invariant()


def test_channel_options():
    dev = FakeDev(lambda k, ch: (-2_000_000, 30_000, 0)[ch], nch=3)
    rig = Rig(dev, drdy=True)
    rig.s.set_channel(0, 0, invert=True)
    rig.s.set_channel(0, 1, no_load_mw=50_000)
    rig.s.set_channel(0, 2, enabled=False)
    rig.run(2100)
    mt = rig.s.meter(0)
    el = rig.s.elapsed_ms(0)
    assert el == 2000
    assert _mwms(mt, 0) == (2_000_000 * el, 0)       # inverted export -> import
    assert _mwms(mt, 1) == (0, 0) and mt.int_time_ms(1) == el
    assert mt.int_time_ms(2) == 0 and mt.gap_time_ms(2) == 0
    mptest.raises(ValueError, rig.s.set_channel, 0, 1, None, None, -1)


def test_tier_seam():
    basic = FakeDev(lambda k, ch: 0)
    s = Sampler(Ticks())
    i = s.add_module(basic)
    assert s.mode(i) == "master" and s.status(i)["note"] == ""
    std = FakeDev(lambda k, ch: 0, tier=1, capability=0x079F)
    j = s.add_module(std)
    assert s.mode(j) == "master" and "not supported" in s.status(j)["note"]
    e = mptest.raises(NotImplementedError, s.add_module, std, False, "module")
    assert "no rbAmp firmware" in str(e)
    mptest.raises(ValueError, select_strategy, basic, "bogus")
    assert isinstance(select_strategy(basic), MasterSide)


def test_poll_returns_delay_and_continues_meter():
    dev = FakeDev(lambda k, ch: 1000, phase=0)
    clk = Ticks(start=PERIOD - 10)
    old = Meter(2)
    old.add(0, 3_600_000, 1000)
    s = Sampler(clk)
    s.add_module(dev, meter=old)
    dev.t = 10
    d = s.poll(clk.ticks_ms())
    assert 0 < d <= 200
    assert s.meter(0) is old and old.import_mwh[0] == 1000


def test_default_clock():
    s = Sampler()
    dev = FakeDev(lambda k, ch: 0)
    s.add_module(dev)
    d = s.poll(s._ms())
    assert 0 <= d <= 1000 and s.mods[0].reads == 1


def _poll(s, now):
    return s.poll(now)


def test_poll_hot_path_allocation_free():
    for drdy in (False, True):
        dev = FakeDev(_steps(3))
        rig = Rig(dev, drdy=drdy)
        rig.run(3000)
        m = rig.s.mods[0]
        for _ in range(20):
            nk = dev.phase + (dev.committed() + 1) * W + 2
            d = nk - dev.t
            rig.clk.advance(d)
            dev.t += d
            if drdy:
                mptest.assert_no_alloc(rig.s.on_drdy, 0)
            w = m.windows
            m.t_due = rig.clk.ticks_ms()     # due now (cadence mode may have read late)
            mptest.assert_no_alloc(_poll, rig.s, rig.clk.ticks_ms())
            assert m.windows == w + 1


def test_counters_wrap_without_bigints():
    dev = FakeDev(_steps(5))
    rig = Rig(dev, drdy=True)
    rig.run(1000)
    m = rig.s.mods[0]
    top = (1 << 29) - 1
    m.reads = m.windows = m.drdy_edges = top
    nk = dev.phase + (dev.committed() + 1) * W
    rig.clk.advance(nk - dev.t)
    dev.t = nk
    mptest.assert_no_alloc(rig.s.on_drdy, 0)
    mptest.assert_no_alloc(_poll, rig.s, rig.clk.ticks_ms())
    assert m.reads == 0 and m.windows == 0 and m.drdy_edges == 0
    rig.invariant()


def test_random_faults_time_invariant():
    r = mptest.Rng(99)
    n = 60 if mptest.MICROPYTHON else 200
    for drdy in (False, True):
        dev = FakeDev(_steps(4), phase=r.below(W))
        rig = Rig(dev, drdy=drdy, gap_limit_ms=1000 + r.below(2000))
        m = rig.s.mods[0]

        def chaos(rg):
            x = r.below(1000)
            if x < 8:
                dev.io_fail = not dev.io_fail
            elif x < 12:
                dev.invalid = not dev.invalid
            elif x < 18:
                c = r.below(2)
                dev.bad[c] = not dev.bad[c]
            elif x < 19:
                dev.reboot()
            elif x < 22:
                rg.clk.advance(150 + r.below(3000))   # node stalls
                dev.t += 150 + r.below(3000)
        for _ in range(n):
            rig.run(300 + r.below(700), chaos)
            rig.invariant()
        assert m.windows > 0
