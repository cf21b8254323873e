"""Energy benchmark: prints figures (not a timed test). ~2-4 minutes.

  python tools/bench/bench_energy.py [--quick] [--year]

1. Drift over 10 simulated years at 5 Hz (solar-home day repeated, ch0 = grid
   import/export; and a constant 3 kW): our integer engine vs the exact
   rational sum vs a float32 accumulator like the seed's loop.
2. Cost per sample (decode + integrate, 3 channels) of our path vs the
   seed-style float loop, and heap bytes per sample, on the MicroPython unix
   port and the 32-bit wasm port.
3. I2C transactions per module per window (simulator bus counter).
How each figure is produced is printed next to it."""
import math
import os
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in ("lib", "tools", "tools/bench", "tests"):
    sys.path.insert(0, os.path.join(ROOT, _p))

from energy import Meter, Q_MWMS, MAX_DT_MS           # noqa: E402
import energy_mp                                      # noqa: E402

YEAR_DAYS = 365
YEARS = 10
STEPS_PER_ROW = 1500          # 300 s rows / 200 ms samples
DT = 200

_F = struct.Struct("<f")


def f32(x):
    """Nearest float32 (struct round-trip; identical on CPython/MicroPython)."""
    return _F.unpack(_F.pack(x))[0]


# ---------------------------------------------------------------- float32
def f32_steps(acc, inc, n):
    """n x `acc = f32(acc + inc)` one by one (the reference)."""
    up, pk = _F.unpack, _F.pack
    for _ in range(n):
        acc = up(pk(acc + inc))[0]
    return acc


def f32_run(acc, inc, n):
    """Same result as f32_steps(acc, inc, n) for float32 acc >= 0, inc > 0,
    computed in runs: inside one binade [2**k, 2**(k+1)) every sum is rounded
    to a multiple of the same ulp, so without a tie each step adds the same
    rounded amount d; only binade crossings and ties are stepped singly.
    All double arithmetic here is exact (multiples of powers of two)."""
    while n > 0:
        if acc <= 0.0:
            acc = f32(acc + inc)
            n -= 1
            continue
        _, e = math.frexp(acc)          # acc in [2**(e-1), 2**e)
        hi = math.ldexp(1.0, e)
        u = math.ldexp(1.0, e - 24)     # float32 ulp in this binade
        q = math.floor(inc / u)
        r = inc - q * u
        if r + r == u:                  # tie: parity dependent, step singly
            acc = f32(acc + inc)
            n -= 1
            continue
        d = q * u + (u if r + r > u else 0.0)
        if d == 0.0:
            return acc                  # frozen: every further step is a no-op
        k = int((hi - acc - inc) // d)  # steps whose sums stay below hi
        if k < 1:
            acc = f32(acc + inc)
            n -= 1
            continue
        if k > n:
            k = n
        acc += k * d
        n -= k
    return acc


def seed_inc(p_mw):
    """dWh of one 200 ms sample as the seed loop computes it in float32:
    p (float32 W register) * dt_s (0.2 as float32) / 3600."""
    p = f32(p_mw / 1000.0)
    dt_s = f32(DT / 1000.0)
    return f32(f32(p * dt_s) / 3600.0)


def f32_day(rows, cons, exp, fast=True):
    run = f32_run if fast else f32_steps
    for p in rows:
        if p == 0:
            continue
        inc = seed_inc(p) if p > 0 else seed_inc(-p)
        if p > 0:
            cons = run(cons, inc, STEPS_PER_ROW)
        else:
            exp = run(exp, inc, STEPS_PER_ROW)
    return cons, exp


# ---------------------------------------------------------------- engine
def exact_day(rows):
    imp = sum(p * STEPS_PER_ROW * DT for p in rows if p > 0)
    exp = sum(-p * STEPS_PER_ROW * DT for p in rows if p < 0)
    return imp, exp


def split(total_mwms):
    """Engine state fields for an exact total: (kwh, mwh, rem)."""
    q, rem = divmod(total_mwms, Q_MWMS)
    kwh, mwh = divmod(q, 1_000_000)
    return kwh, mwh, rem


def engine_days(rows, m, days, dt):
    """Days through Meter.add with samples of `dt` ms (200 = sample by sample;
    20_000 = 100 samples coalesced, exactly equivalent because the engine's
    state depends only on the exact sum, see docs/energy.md)."""
    add = m.add
    per = STEPS_PER_ROW * DT // dt
    for _ in range(days):
        for p in rows:
            for _ in range(per):
                add(0, p, dt)


def mwh_str(mwms):
    return "%.3f" % (mwms / Q_MWMS)


def pct(err, ref):
    return "%+.6f%%" % (100.0 * err / ref) if ref else "n/a"


def drift(name, rows, runtimes_day, quick, full_year):
    print("\n== 1. drift: %s, %d years x %d days at 5 Hz ==" % (name, YEARS, YEAR_DAYS))
    days = YEARS * YEAR_DAYS
    di, de = exact_day(rows)
    # (a) sample by sample, one day, every runtime (same state everywhere)
    m = Meter(1)
    t0 = time.time()
    engine_days(rows, m, 1, DT)
    t_day = time.time() - t0
    st = m.state(0)
    ok_day = st[1:4] == split(di) and st[4:7] == split(de)
    print("engine, 1 day sample by sample (432_000 Meter.add) CPython %.1f s: state == exact split: %s"
          % (t_day, ok_day))
    for rt, (state, us) in runtimes_day.items():
        if not state:
            print("  %-22s did not run (see above)" % rt)
            continue
        same = state == ",".join(str(x) for x in st)
        print("  %-22s 1 day sample by sample %.1f s, state identical to CPython: %s" % (rt, us / 1e6, same))
    # (b) one year through Meter.add: sample by sample with --year, else in
    # 20 s steps (100 samples per call; exact, see above)
    dt_y = DT if full_year else MAX_DT_MS
    ydays = 30 if quick else YEAR_DAYS
    m = Meter(1)
    t0 = time.time()
    engine_days(rows, m, ydays, dt_y)
    st = m.state(0)
    ok_y = st[1:4] == split(ydays * di) and st[4:7] == split(ydays * de)
    print("engine, %d days through Meter.add with dt=%d ms (%.1f s): state == exact split: %s"
          % (ydays, dt_y, time.time() - t0, ok_y))
    # (c) the rest by the closed form the two checks above confirm
    imp, exp = days * di, days * de
    ki, mi, ri = split(imp)
    ke, me, re_ = split(exp)
    print("engine, %d years: days %d..%d fast-forwarded exactly (state = split of the exact sum)"
          % (YEARS, ydays + 1, days))
    eng_i = (ki * 1_000_000 + mi) * Q_MWMS
    eng_e = (ke * 1_000_000 + me) * Q_MWMS
    # float32 seed loop: path dependent, emulated step for step
    t0 = time.time()
    c1, e1 = f32_day(rows, 0.0, 0.0, fast=False)
    c2, e2 = f32_day(rows, 0.0, 0.0, fast=True)
    check = [(c1, e1) == (c2, e2)]
    cons = exp_f = 0.0
    for d in range(days):
        if d in (5 * YEAR_DAYS, days - 1):
            # re-check the run-length emulation against single steps late on
            a, b = f32_day(rows, cons, exp_f, fast=False)
            cons, exp_f = f32_day(rows, cons, exp_f, fast=True)
            check.append((a, b) == (cons, exp_f))
        else:
            cons, exp_f = f32_day(rows, cons, exp_f, fast=True)
    print("float32 (seed loop, struct round-trips): %d days, every step emulated (run-length within a"
          " float32 binade, = single steps: %s) %.1f s" % (days, all(check), time.time() - t0))
    f_i = cons * 1000 * Q_MWMS          # Wh -> mW*ms
    f_e = exp_f * 1000 * Q_MWMS
    print("  %-8s %22s %22s %18s %12s %18s %12s" % ("", "exact mWh", "ours mWh", "ours err mWh", "ours %",
                                                   "float32 err mWh", "float32 %"))
    for lab, ex, ours, fl in (("import", imp, eng_i, f_i), ("export", exp, eng_e, f_e),
                              ("net", imp - exp, eng_i - eng_e, f_i - f_e)):
        print("  %-8s %22s %22s %18s %12s %18s %12s" % (
            lab, mwh_str(ex), mwh_str(ours), mwh_str(ours - ex), pct(ours - ex, ex),
            mwh_str(fl - ex), pct(fl - ex, ex)))
    return ok_day and ok_y and all(check)


def run_mp(what):
    """energy_mp.main(what) on the unix port and the wasm32 port."""
    import runtimes
    out = {}
    env = dict(os.environ, MICROPYPATH=os.pathsep.join(
        os.path.join(ROOT, p) for p in ("lib", "tools", "tools/bench")))
    cmds = {"micropython unix (64)": [runtimes.MICROPYTHON, "-X", "heapsize=16M",
                                      os.path.join(ROOT, "tools/bench/energy_mp.py"), what],
            "micropython wasm32": ["node", os.path.join(ROOT, "tools/bench/energy_wasm.mjs"), what]}
    for name, cmd in cmds.items():
        try:
            r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            print("  %s: not run (%s)" % (name, e))
            continue
        kv = {}
        for ln in r.stdout.splitlines():
            if "=" in ln:
                k, v = ln.split("=", 1)
                kv[k.strip()] = v.strip()
        if r.returncode:
            print("  %s failed: %s" % (name, r.stderr[-400:]))
        out[name] = kv
    return out


def cost(mp):
    print("\n== 2. cost per sample: decode 3 x float32 P + integrate 3 channels ==")
    print("(ours: rbamp.decode.mw_at -> int mW, Meter.add; seed: struct.unpack_from float W,"
          " dWh = P*dt/3600 split by sign; heap bytes = gc.mem_alloc delta with gc disabled)")
    print("  %-22s %10s %10s %7s %12s %12s %14s %14s" % ("runtime", "ours us", "seed us", "ratio",
                                                       "decode us", "integr. us", "ours B/sample",
                                                       "seed B/sample"))
    for name, kv in mp.items():
        if "cost_n" not in kv:
            continue
        n = int(kv["cost_n"])
        o = int(kv["cost_ours_us"]) / n
        s = int(kv["cost_seed_us"]) / n
        print("  %-22s %10.1f %10.1f %7.2f %12.1f %12.1f %14.2f %14.1f" % (
            name, o, s, o / s, int(kv["cost_decode_us"]) / n, int(kv["cost_integrate_us"]) / n,
            int(kv["cost_ours_alloc"]) / n, int(kv["cost_seed_alloc"]) / n))


def bus_counts(quick):
    print("\n== 3. I2C transactions per module per RT window (simulator bus counter, CPython) ==")
    from rbamp_sim import Bus, Module, Profile, Faults, VirtualClock
    from rbamp import RbAmp
    from clock import Ticks
    from energy.sampler import Sampler
    minutes = 2 if quick else 10
    cases = [("cadence, burst reads", False, True, None),
             ("DRDY, burst reads", True, True, None),
             ("cadence, bytewise (no auto-increment)", False, False, None),
             ("cadence, burst, 2 % NACK + reboot", False, True, "faulty")]
    for label, drdy, auto, faults in cases:
        vc = VirtualClock(start_ms=7 * 3_600_000)
        f = None
        if faults:
            f = Faults(seed=7, nack_rate=0.02, reboot_at=[vc.now_ms() + 30_000])
        mod = Module(addr=0x50, variant="UI2", version=0x03, profile=Profile.solar_home_day(),
                     auto_increment=auto, seed=1)
        b = Bus([mod], clock=vc, faults=f)
        tk = Ticks(start=(1 << 30) - 1000, source=vc.now_ms)
        dev = RbAmp(b, 0x50, delay_ms=vc.advance, ticks=tk)
        dev.begin()
        s = Sampler(tk)
        i = s.add_module(dev, drdy=drdy)
        if drdy:
            mod.on_drdy = lambda _m, _t: s.on_drdy(i)
        tx0 = b.n_tx
        end = vc.now_ms() + minutes * 60_000
        while vc.now_ms() < end:
            d = s.poll(tk.ticks_ms())
            step = d if d > 0 else 1
            if drdy:
                nc = mod.next_commit_ms()
                if nc is not None and 0 < nc - vc.now_ms() < step:
                    step = nc - vc.now_ms()
            vc.advance(step)
        st = s.status(i)
        w = st["windows"]
        print("  %-40s %6d windows %7d tx  %.3f tx/window  (%.3f reads/window, early re-polls %d)"
              % (label, w, b.n_tx - tx0, (b.n_tx - tx0) / w, st["reads"] / w, st["early"]))


def main():
    quick = "--quick" in sys.argv
    full_year = "--year" in sys.argv
    t0 = time.time()
    rows = energy_mp.day_rows()
    print("Energy benchmark (%s); profile: Profile.solar_home_day() ch0 (grid), 288 rows x 300 s,"
          " repeated daily; samples at 5 Hz (dt = 200 ms)" % ("quick" if quick else "full"))
    mp = run_mp("day cost")
    day = {k: (v.get("day_state", ""), int(v.get("day_us", "0"))) for k, v in mp.items()}
    ok = drift("solar home (import + export)", rows, day, quick, full_year)
    const = [3_000_000] * 288
    ok = drift("constant 3 kW", const, {}, quick, full_year) and ok
    cost(mp)
    bus_counts(quick)
    print("\nall exactness checks passed: %s; benchmark wall time %.0f s" % (ok, time.time() - t0))


if __name__ == "__main__":
    main()
