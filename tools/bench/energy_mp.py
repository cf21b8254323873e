"""Per-runtime half of tools/bench/bench_energy.py. Runs unchanged on
CPython, the MicroPython unix port and the wasm32 port; prints KEY=value
lines that the CPython driver collects.

  day:  one simulated solar-home day (ch0 = grid) sample by sample at 5 Hz
        through energy.Meter.add -> final state (compared across runtimes)
  cost: per-sample cost of decode + integrate for 3 channels, our integer
        path vs the seed-style float loop, in us and heap bytes per sample"""
import gc
import struct
import sys
import time

from energy import Meter
from rbamp.decode import mw_at

try:
    import micropython  # noqa: F401
    MP = True
except ImportError:
    MP = False

if hasattr(time, "ticks_us"):
    def _us():
        return time.ticks_us()            # type: ignore

    def _dus(a, b):
        return time.ticks_diff(a, b)      # type: ignore
else:
    def _us():
        return int(time.perf_counter() * 1_000_000)

    def _dus(a, b):
        return a - b


def day_rows():
    """ch0 row powers (int mW) of Profile.solar_home_day(): 288 x 300 s."""
    from rbamp_sim import Profile
    p = Profile.solar_home_day()
    assert p.ts[1] == 300_000 and len(p.ts) == 288
    return p.p[0]


def run_day(rows, m, steps_per_row=1500, dt=200):
    add = m.add
    for p in rows:
        for _ in range(steps_per_row):
            add(0, p, dt)


def _rt_buf(watts):
    b = bytearray(78)
    for i, w in enumerate(watts):
        struct.pack_into("<f", b, 0x36 + 4 * i, w)
    return b


def ours(buf, m, n, dt):
    # decode the three P registers to int mW and integrate each channel
    add = m.add
    for _ in range(n):
        add(0, mw_at(buf, 0x36), dt)
        add(1, mw_at(buf, 0x3A), dt)
        add(2, mw_at(buf, 0x3E), dt)


def decode_only(buf, out, n, dt):
    for _ in range(n):
        out[0] = mw_at(buf, 0x36)
        out[1] = mw_at(buf, 0x3A)
        out[2] = mw_at(buf, 0x3E)


def integrate_only(p, m, n, dt):
    add = m.add
    p0 = p[0]
    p1 = p[1]
    p2 = p[2]
    for _ in range(n):
        add(0, p0, dt)
        add(1, p1, dt)
        add(2, p2, dt)


def seed(buf, acc, n, dt_ms):
    # the tiers page's loop: float W, dWh = P*dt/3600 split by sign
    unpack_from = struct.unpack_from
    for _ in range(n):
        dt_s = dt_ms / 1000.0
        for ch in range(3):
            p = unpack_from("<f", buf, 0x36 + 4 * ch)[0]
            dwh = p * dt_s / 3600.0
            if p >= 0.0:
                acc[ch] += dwh
            else:
                acc[3 + ch] -= dwh


def _measure(fn, a, b, n, dt):
    gc.collect()
    if MP:
        gc.disable()
        a0 = gc.mem_alloc()               # type: ignore
    t0 = _us()
    fn(a, b, n, dt)
    us = _dus(_us(), t0)
    alloc = -1
    if MP:
        alloc = gc.mem_alloc() - a0       # type: ignore
        gc.enable()
    return us, alloc


def cost(n):
    buf = _rt_buf([2345.678, -1234.5, 812.25])
    m = Meter(3)
    acc = [0.0] * 6
    ours(buf, m, 100, 200)                # warm-up
    seed(buf, acc, 100, 200)
    us_o, al_o = _measure(ours, buf, m, n, 200)
    us_s, al_s = _measure(seed, buf, acc, n, 200)
    out = [0, 0, 0]
    us_d, _ = _measure(decode_only, buf, out, n, 200)
    us_i, _ = _measure(integrate_only, out, Meter(3), n, 200)
    print("cost_decode_us=%d" % us_d)
    print("cost_integrate_us=%d" % us_i)
    print("cost_ours_us=%d" % us_o)
    print("cost_seed_us=%d" % us_s)
    print("cost_ours_alloc=%d" % al_o)
    print("cost_seed_alloc=%d" % al_s)
    print("cost_n=%d" % n)


def main(what="day cost", n_cost=5000):
    print("runtime=%s bits=%d" % (sys.implementation.name, 64 if sys.maxsize > (1 << 32) else 32))
    if "day" in what:
        rows = day_rows()
        m = Meter(1)
        t0 = _us()
        run_day(rows, m)
        print("day_us=%d" % _dus(_us(), t0))
        print("day_state=%s" % ",".join(str(x) for x in m.state(0)))
    if "cost" in what:
        cost(n_cost)


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "day cost")
