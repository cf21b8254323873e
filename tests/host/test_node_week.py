"""A simulated week of the whole node in virtual time: I2C faults, power
cuts at virtual instants and in the middle of flash operations, restarts on
the same flash image. Totals must end within the documented bounds of the
simulator's ground truth over the powered intervals."""
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "simboard"))

from launch import SimNode, CUT_RC   # noqa: E402
from rbmeter import client as rbc   # noqa: E402
import rbamp_sim   # noqa: E402

MWMS = 3600000
DAY = 86400000
WEEK_S = 7 * 86400
WINDOW = 200           # the module's real RT window: ~3M windows, about 3 CPU-minutes
STORE_MS = 5000
FAULT_RATE = 0.03
# (cut instant, flash-op index or None, off time before the restart)
CUTS = [(int(1.3 * DAY), None, 20000), (int(3.7 * DAY), 40, 0), (int(5.2 * DAY) + 777, None, 180000)]


def test_week_with_faults_and_power_cuts(tmp_path):
    d = str(tmp_path)
    common = ["--virtual", "--duration", str(WEEK_S), "--window-ms", str(WINDOW), "--store-ms", str(STORE_MS),
              "--console-ms", "10000", "--i2c-fault-rate", str(FAULT_RATE)]
    start = 0
    powered = []
    wall0 = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    for i, (t_cut, op, off) in enumerate(CUTS):
        args = common + ["--start-ms", str(start), "--seed", str(i + 1), "--cut-at-ms", str(t_cut)]
        if op is not None:
            # cut at the op-th flash operation after boot (the instant is the fallback)
            args = common + ["--start-ms", str(start), "--seed", str(i + 1), "--cut-at-flash-op", str(op)]
        n = SimNode(d, args)
        try:
            r = n.wait("READY", 60)
            t = n.wait("CUT", 900)
        finally:
            n.stop()
        assert n.proc.returncode == CUT_RC
        if op is None:
            # retry delays (virtual time advanced inside one step) may straddle the
            # instant; the reported CUT time is what the truth intervals use
            assert t_cut <= t < t_cut + 1000
        powered.append((r, t))
        start = t + off
    n = SimNode(d, common + ["--start-ms", str(start), "--seed", "9"])
    try:
        r = n.wait("READY", 60)
        done = n.wait("DONE", 900)
        wall = time.monotonic() - wall0
        powered.append((r, done))
        with rbc.Client(n.bridge.host_path, timeout=3.0) as c:
            chans = c.channels()
            st = c.status()
    finally:
        n.stop()
    assert WEEK_S * 1000 <= done < WEEK_S * 1000 + 1000
    print("\n".join(ln for ln in n.lines if ln.startswith("LOG mem")))
    on_ms = sum(b - a for a, b in powered)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - cpu0
    print("week: %d power-ups, %.1f h powered, wall %.1f s (node CPU %.1f s) -> %.1f simulated h per wall s,"
          " %.1f per CPU s" % (len(powered), on_ms / 3.6e6, wall, cpu, WEEK_S / 3600.0 / wall, WEEK_S / 3600.0 / cpu))
    print("status:", {k: st[k] for k in ("i2c_retries", "io_errors", "missed", "outages", "gap_events", "commits",
                                         "fs") if k in st})
    assert st["fs"] == "ok" and st["task_errors"] == 0
    assert st["i2c_retries"] > 1000                 # the fault injection really ran (last power-up)
    prof = rbamp_sim.Profile.solar_home_day()
    boots = len(powered)
    for rec in chans:
        ch = rec["ch"]
        imp = exp = 0
        for a, b in powered:
            i, e = prof.energy_mwms(ch, a, b)
            imp += i
            exp += e
        imp /= MWMS
        exp /= MWMS
        p = prof.max_abs_mw(ch, 0, done)
        # documented bounds: per power cut the store's loss bound
        # (max(threshold, P x min interval) + one store tick), per boot the
        # first window (no interval yet), per profile step one window
        # attributed to the wrong side, per I/O fault one bridged window
        cut_loss = len(CUTS) * (max(1000, p * 5000 // MWMS) + p * STORE_MS // MWMS)
        edge = (boots * 2 * WINDOW * p + WINDOW * prof.step_sum_mw(ch, 0, done)) / MWMS
        faults = st["io_errors"] * WINDOW * p / MWMS
        lo = imp - cut_loss - edge - faults - 1
        hi = imp + edge + faults + 1
        print("ch%d import node %d truth %.1f bounds [%.1f, %.1f] mWh" % (ch, rec["import_mwh"], imp, lo, hi))
        assert lo <= rec["import_mwh"] <= hi
        assert exp - cut_loss - edge - faults - 1 <= rec["export_mwh"] <= exp + edge + faults + 1
