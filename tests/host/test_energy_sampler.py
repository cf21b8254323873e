"""CPython-only sampler tests: the full simulated solar-home day against the
simulator's ground truth, and hypothesis-driven fault sequences."""
from hypothesis import given, settings, strategies as st

from energy import Q_MWMS
from test_energy_sampler import FakeDev, Rig, _mwms
from test_energy_sim import SimRun, H


def test_solar_home_full_day_drdy():
    # 432k windows through driver + sampler; ~30 s, dominated by the simulator
    r = SimRun(0, drdy=True)
    r.run(24 * H + 1000)
    m = r.s.mods[r.i]
    st_ = r.s.status(r.i)
    assert m.windows >= 431_990 and st_["missed"] == 0 and st_["gap_events"] == [0, 0]
    assert m.reads == m.windows + st_["invalid"]
    grid, truth, wres = r.check_bounds(0, 0)
    pv = r.check_bounds(1, 0)[0]
    # morning/evening import, midday export, PV only exports
    assert grid[0] > 10 * H * 1_000_000 and grid[1] > 10 * H * 1_000_000
    assert pv[0] == 0 and pv[1] > 20 * H * 1_000_000
    # per window exact: only float32->mW rounding, here none at all
    assert abs(grid[0] - wres[0]) <= Q_MWMS and abs(grid[1] - wres[1]) <= Q_MWMS
    # vs the continuous truth, import/export differ only by the sign mix
    # inside the windows that straddle a flip (module reports window means)
    flips = 0
    p = r.prof
    t = 0
    prev = p.value_mw(0, 0)
    while t < 24 * H:
        t = p.next_change(t)
        v = p.value_mw(0, t)
        if (v > 0) != (prev > 0):
            flips += 1
        prev = v
    mix = flips * 5_000_000 * 200          # |p| < 5 kW in this profile
    assert abs(grid[0] - truth[0]) <= mix + Q_MWMS and abs(grid[1] - truth[1]) <= mix + Q_MWMS
    net = (grid[0] - grid[1]) - (truth[0] - truth[1])
    assert abs(net) <= Q_MWMS


def test_solar_home_two_hours_cadence():
    r = SimRun(6 * H + 30 * 60_000)
    r.run(2 * H)
    m = r.s.mods[r.i]
    assert m.missed == 0 and m.reads <= m.windows * 1.06
    r.check_bounds(0, 10)
    r.check_bounds(1, 10)


ACTIONS = st.lists(st.tuples(st.sampled_from(["run", "io", "inv", "bad0", "bad1", "reboot", "stall", "leap"]),
                             st.integers(1, 4000)), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(ACTIONS, st.booleans(), st.integers(0, 199), st.integers(0, 20_000),
       st.integers(-50_000_000, 50_000_000), st.integers(-50_000_000, 50_000_000))
def test_fault_sequences_keep_time_and_exactness(actions, drdy, phase, limit, p0, p1):
    # constant power per channel: whatever the faults, energy must equal
    # power * integrated time exactly, and integrated + gap + pending = elapsed
    dev = FakeDev(lambda k, ch: p0 if ch == 0 else p1, phase=phase)
    rig = Rig(dev, drdy=drdy, gap_limit_ms=limit)
    for act, x in actions:
        if act == "io":
            dev.io_fail = not dev.io_fail
        elif act == "inv":
            dev.invalid = not dev.invalid
        elif act == "bad0":
            dev.bad[0] = not dev.bad[0]
        elif act == "bad1":
            dev.bad[1] = not dev.bad[1]
        elif act == "reboot":
            dev.reboot()
        elif act == "stall":
            rig.clk.advance(x)
            dev.t += x
        elif act == "leap":
            dev.phase -= (x % 300) * 200       # SEQ leaps without an event
        rig.run(x)
        rig.invariant()
    m = rig.s.mods[0]
    for ch, p in ((0, p0), (1, p1)):
        t = m.meter.int_time_ms(ch)
        want = (p * t, 0) if p > 0 else (0, -p * t)
        assert _mwms(m.meter, ch) == want
        st_ = rig.s.status(0)
        assert st_["bridged_ms"][ch] <= t
