"""rbamp_sim properties (CPython only: hypothesis, subprocess)."""
import os
import struct
import subprocess

from hypothesis import given, settings, strategies as st

from rbamp_sim import Bus, Module, Profile, Faults, VirtualClock
from runtimes import ROOT, MICROPYTHON, MICROPYPATH

rows = st.lists(st.tuples(st.integers(1, 5000), st.integers(-3_000_000, 3_000_000),
                          st.integers(200_000, 250_000)), min_size=1, max_size=8)


def build(rs, period_extra=None):
    ts, p, u = [], [], []
    t = 0
    for dt, pm, um in rs:
        ts.append(t)
        p.append(pm)
        u.append(um)
        t += dt
    per = t + period_extra if period_extra is not None else 0
    return Profile(ts, [p], u, period_ms=per)


def brute(prof, t0, t1):
    imp = exp = 0
    for t in range(t0, t1):
        v = prof.value_mw(0, t)
        if v > 0:
            imp += v
        else:
            exp -= v
    return imp, exp


@settings(max_examples=60, deadline=None)
@given(rows, st.one_of(st.none(), st.integers(1, 3000)), st.integers(0, 20000),
       st.integers(0, 3000), st.integers(0, 3000))
def test_energy_matches_brute_force_and_is_additive(rs, extra, t0, d1, d2):
    prof = build(rs, extra)
    t1, t2 = t0 + d1, t0 + d1 + d2
    a = prof.energy_mwms(0, t0, t1)
    b = prof.energy_mwms(0, t1, t2)
    c = prof.energy_mwms(0, t0, t2)
    assert (a[0] + b[0], a[1] + b[1]) == c
    assert a == brute(prof, t0, t1)
    # row_span agrees with value_mw and next_change
    s, e, p0 = prof.row_span(t1)[:3]
    assert s <= t1 < e and p0 == prof.value_mw(0, t1)
    assert prof.next_change(t1) == e or prof.value_mw(0, e) == p0


@settings(max_examples=25, deadline=None)
@given(rows, st.integers(1, 4000), st.integers(0, 20), st.integers(-20000, 20000),
       st.integers(2000, 60000), st.integers(1, 9))
def test_closed_form_catch_up_equals_polling(rs, extra, jitter, ppm, gap, seed):
    prof = build(rs, extra)
    f = Faults(seed=seed, jitter_ms=jitter, window_ppm=ppm)
    res = []
    for step in (200, gap):
        clock = VirtualClock()
        mod = Module(variant="UI1", profile=prof)
        bus = Bus([mod], clock=clock, faults=f)
        t = 0
        while t < gap:
            t = min(t + step, gap)
            clock.set(t)
            try:
                bus.readfrom_mem(0x50, 0x70, 78)
            except OSError:
                pass
        clock.set(gap + 1000)
        res.append((bus.readfrom_mem(0x50, 0, 256), mod.drdy_count, mod.basic_mwms(0),
                    list(mod.acc_sum), mod.acc_n, mod.acc_max))
    assert res[0] == res[1]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(-10 ** 8, 10 ** 8)),
                min_size=1, max_size=6))
def test_csv_decimals_are_exact(rs):
    lines = ["t_s,p0_w"]
    t = 0
    want = []
    for dt, mw in rs:
        t += dt + 1
        sign = "-" if mw < 0 else ""
        lines.append("%d.%03d,%s%d.%03d" % (t // 1000, t % 1000, sign, abs(mw) // 1000, abs(mw) % 1000))
        want.append((t, mw))
    prof = Profile.from_csv("\n".join(lines))
    for t, mw in want:
        assert prof.value_mw(0, t) == mw


@settings(max_examples=30, deadline=None)
@given(st.integers(0x70, 0xBD), st.integers(1, 120), st.integers(1, 119))
def test_burst_starting_in_freeze_region_is_one_window(start, n, cut):
    prof = Profile.from_csv("t_s,p0_w,p1_w\n0,100,-5\n1,3000,7\n")
    clock = VirtualClock()
    mod = Module(variant="UI2", profile=prof)
    bus = Bus([mod], clock=clock)
    clock.set(850)
    before = mod.peek(0, 256)          # catches up to 850 first

    def hook(i):
        if i == cut:
            clock.set(1450)
            mod.force_commit()
    bus.between_bytes = hook
    b = bus.readfrom_mem(0x50, start, n)
    for i in range(n):
        r = (start + i) & 0xFF
        if 0x70 <= r <= 0xBD:
            assert b[i] == before[r]


SCRIPT = r"""
import sys, struct, binascii
from rbamp_sim import Bus, Module, Profile, Faults, VirtualClock
clock = VirtualClock()
f = Faults(seed=5, nack_rate=0.05, eio_rate=0.01, timeout_rate=0.01, ghost_rate=0.5,
           emi=[(20000, 25000)], nan_rate=0.02, inf_rate=0.01, stale_rate=0.05,
           reboot_rate_per_h=30.0, jitter_ms=7, window_ppm=300)
mods = [Module(addr=0x50, variant="UI2", profile=Profile.solar_home_day(), seed=3),
        Module(addr=0x51, variant="I3", version=0x04, seed=4, gc_enable=True)]
bus = Bus(mods, clock=clock, faults=f, freq=100000)
crc = 0
buf = bytearray(78)
for i in range(6000):
    clock.advance(137)
    for a in (0x50, 0x51):
        try:
            bus.readfrom_mem_into(a, 0x70, buf)
            crc = binascii.crc32(buf, crc)
        except OSError as e:
            crc = binascii.crc32(bytes([e.args[0]]), crc)
    if i % 500 == 0:
        try:
            bus.writeto(0, b"\xa5\x27\x00" + struct.pack("<H", i))
        except OSError:
            pass
print(crc, [m.drdy_count for m in mods], [m.boots for m in mods], [m.basic_mwms(0) for m in mods],
      mods[0].truth_mwms(0), bus.n_err)
"""


def test_same_results_on_cpython_and_micropython(tmp_path):
    path = tmp_path / "det.py"
    path.write_text(SCRIPT)
    env = dict(os.environ, MICROPYPATH=MICROPYPATH, PYTHONPATH=os.path.join(ROOT, "tools"))
    mp = subprocess.run([MICROPYTHON, str(path)], env=env, capture_output=True, text=True, timeout=120)
    py = subprocess.run([os.path.join(ROOT, ".venv", "bin", "python"), str(path)], env=env,
                        capture_output=True, text=True, timeout=120)
    assert mp.returncode == 0, mp.stderr
    assert py.returncode == 0, py.stderr
    assert mp.stdout == py.stdout
    assert "[" in py.stdout
