"""The module's own 'master-side bidirectional metering' example (seed page
02_tiers.md) runs unchanged on CPython against rbamp + rbamp_sim, and meets
its own +-2 % claim against the simulator's exact energy truth."""
import time

import pytest

from rbamp_sim import Bus, Module, Profile, Faults, VirtualClock

# --- the seed example, same statements; the only addition is `out`, which
# --- exposes the two running totals so the test can read them
from rbamp import RbAmp, RbAmpIOError


def bidirectional_loop(dev, out):
    consume_wh = 0.0
    export_wh = 0.0
    t_prev = time.monotonic()
    while True:
        # Sample RT power at 5 Hz — matches the firmware commit
        # cadence (200 ms per channel).
        time.sleep(0.2)
        t_now = time.monotonic()
        dt_s = t_now - t_prev
        t_prev = t_now
        try:
            p = dev.read_power(0)
        except RbAmpIOError:
            out["io_errors"] = out.get("io_errors", 0) + 1
            continue
        dwh = p * dt_s / 3600.0
        if p >= 0.0:
            consume_wh += dwh
        else:
            export_wh += -dwh
        out["consume_wh"] = consume_wh
        out["export_wh"] = export_wh
        out["t_last"] = t_now
# --- end of the example


class _Stop(Exception):
    pass


class _Ticks:
    def __init__(self, clock):
        self.clock = clock

    def ticks_ms(self):
        return self.clock.now_ms()

    def ticks_diff(self, a, b):
        return a - b


def _mixed_profile(seed=7, rows=40, step_s=15):
    """Solar-home-like steps between import and export on channel 0."""
    import random
    r = random.Random(seed)
    lines = ["t_s,p0_w"]
    for i in range(rows):
        lines.append("%d,%.3f" % (i * step_s, r.uniform(-3500.0, 4500.0)))
    return Profile.from_csv("\n".join(lines))


def run_seed_loop(monkeypatch, clock, dev, n_iter):
    """Run the example unchanged for n_iter sleeps: time.sleep advances the
    simulator's virtual clock and time.monotonic reads it. Returns its totals."""
    state = {"n": 0}

    def fake_sleep(s):
        if state["n"] >= n_iter:
            raise _Stop()
        state["n"] += 1
        clock.advance(int(round(s * 1000)))

    monkeypatch.setattr(time, "sleep", fake_sleep)
    monkeypatch.setattr(time, "monotonic", lambda: clock.now_ms() / 1000.0)
    out = {}
    with pytest.raises(_Stop):
        bidirectional_loop(dev, out)
    return out


@pytest.mark.parametrize("faults", [Faults(seed=3), Faults(seed=4, nack_rate=0.05, eio_rate=0.01)],
                         ids=["clean", "nacks"])
def test_seed_bidirectional_example(monkeypatch, faults):
    clock = VirtualClock(start_ms=0)
    prof = _mixed_profile()
    mod = Module(addr=0x50, variant="UI1", version=0x03, profile=prof, seed=1)
    bus = Bus([mod], clock=clock, faults=faults, freq=50_000)
    clock.advance(500)
    dev = RbAmp(bus, 0x50, delay_ms=clock.sleep_ms, ticks=_Ticks(clock))
    dev.begin()

    t0 = clock.now_ms()
    out = run_seed_loop(monkeypatch, clock, dev, 3000)      # 600 s of virtual time
    t1 = int(round(out["t_last"] * 1000))
    imp, exp = prof.energy_mwms(0, t0, t1)
    true_imp = imp / 3.6e9
    true_exp = exp / 3.6e9
    assert true_imp > 50 and true_exp > 20            # the profile really goes both ways
    assert abs(out["consume_wh"] - true_imp) <= 0.02 * true_imp, (out, true_imp)
    assert abs(out["export_wh"] - true_exp) <= 0.02 * true_exp, (out, true_exp)
    print("consume %.3f Wh (truth %.3f), export %.3f Wh (truth %.3f), io errors %d, retries %d" % (
        out["consume_wh"], true_imp, out["export_wh"], true_exp, out.get("io_errors", 0),
        dev.retry_count_total))


def test_seed_example_on_the_solar_day(monkeypatch):
    """08:00-09:00 of the simulator's solar home: the grid channel swings from
    import (breakfast) to export (PV ramping up)."""
    clock = VirtualClock(start_ms=8 * 3600 * 1000 - 500)
    prof = Profile.solar_home_day()
    mod = Module(addr=0x50, variant="UI2", version=0x04, profile=prof, seed=2)
    bus = Bus([mod], clock=clock, faults=Faults(seed=8, host="esp32"), freq=50_000)
    clock.advance(500)
    dev = RbAmp(bus, 0x50, delay_ms=clock.sleep_ms, ticks=_Ticks(clock))
    dev.begin()
    t0 = clock.now_ms()
    out = run_seed_loop(monkeypatch, clock, dev, 18000)
    imp, exp = prof.energy_mwms(0, t0, int(round(out["t_last"] * 1000)))
    assert imp > 0 and exp > 0
    assert abs(out["consume_wh"] - imp / 3.6e9) <= 0.02 * imp / 3.6e9, (out, imp / 3.6e9)
    assert abs(out["export_wh"] - exp / 3.6e9) <= 0.02 * exp / 3.6e9, (out, exp / 3.6e9)
    print("solar 08-09h: consume %.2f Wh (truth %.2f), export %.2f Wh (truth %.2f), io errors %d" % (
        out["consume_wh"], imp / 3.6e9, out["export_wh"], exp / 3.6e9, out.get("io_errors", 0)))
