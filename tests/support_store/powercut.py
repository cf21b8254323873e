"""Power-cut sweeps (run by tests/host/test_store_lfs.py on the unix port).
usage: micropython powercut.py exhaustive PATTERN TORN | random N SEED
Prints one line 'RESULT {json}'; exit 1 on any violation."""
import sys
import json
import gc

import flashsim
from flashsim import PowerCut
import mptest
import lfs_rig
from lfs_rig import Rig, NCH, load_profile

PMAX = 10000000       # mW used in the fixed sequence
DT = 1000


def bound_mwh(pol, pmax_mw, dt_ms):
    # max(threshold, P x min interval) + one tick of detection latency
    a = pol.threshold_mwh
    b = pmax_mw * pol.min_ms // 3600000
    return (a if a > b else b) + pmax_mw * dt_ms // 3600000 + 1


def check(tag, rec, truth, acked, prev, bound, errs):
    for c in range(NCH):
        for d in range(2):
            r = rec[c][d]
            if r > truth[c][d]:
                errs.append("%s ch%d dir%d ahead of truth %d > %d" % (tag, c, d, r, truth[c][d]))
            if r < acked[c][d]:
                errs.append("%s ch%d dir%d below acknowledged commit %d < %d" % (tag, c, d, r, acked[c][d]))
            if r < prev[c][d]:
                errs.append("%s ch%d dir%d not monotonic %d < %d" % (tag, c, d, r, prev[c][d]))
            if truth[c][d] - r > bound:
                errs.append("%s ch%d dir%d lost %d > bound %d" % (tag, c, d, truth[c][d] - r, bound))


def sequence(rig, nticks):
    # representative: 3 channels loaded, commits every min interval
    p = (PMAX, -PMAX // 2, None)
    for _ in range(nticks):
        rig.step(p, DT)


def exhaustive(pattern, torn, nticks=40):
    base = Rig(pattern=pattern)
    base.boot()
    img = base.dev.snapshot()         # formatted + one boot record
    flashsim.umount(lfs_rig.MNT)
    # dry run: how many flash ops does the sequence take?
    r = Rig(pattern=pattern, data=img)
    r.boot()
    o0 = r.dev.ops
    sequence(r, nticks)
    total = r.dev.ops - o0
    flashsim.umount(lfs_rig.MNT)
    pol = r.policy
    bound = bound_mwh(pol, PMAX, DT)
    errs = []
    stats = {"old": 0, "lost_max": 0, "cuts": 0}
    for k in range(total + 1):
        r = Rig(pattern=pattern, torn=torn, data=img)
        r.boot()
        r.dev.cut_at = r.dev.ops + k
        prev = r.totals()
        try:
            sequence(r, nticks)
        except PowerCut:
            pass
        truth = r.totals()
        acked = r.saved_totals()
        try:
            r.power_cut_reboot(keep_fast=False)
        except Exception as e:
            errs.append("cut %d: recovery raised %r" % (k, e))
            flashsim.umount(lfs_rig.MNT)
            continue
        rec = r.totals()
        check("cut %d" % k, rec, truth, acked, prev, bound, errs)
        for c in range(NCH):
            lost = truth[c][0] - rec[c][0] + truth[c][1] - rec[c][1]
            if lost > stats["lost_max"]:
                stats["lost_max"] = lost
        stats["cuts"] += 1
        flashsim.umount(lfs_rig.MNT)
        gc.collect()
    stats.update({"pattern": pattern, "torn": torn, "ops": total, "bound_mwh": bound, "errors": errs[:20], "nerr": len(errs)})
    return stats


def randomized(n, seed):
    rng = mptest.Rng(seed)
    r = Rig(nblocks=32)
    r.boot()
    pol = r.policy
    errs = []
    sim_ms = 0
    lost_max = 0
    commits = 0
    soft = 0
    prev = r.totals()
    for k in range(n):
        ops0 = r.dev.ops
        r.dev.cut_at = ops0 + rng.below(12)
        r.dev.torn = rng.below(3)
        # a short run: a few ticks with random load and random tick length
        pmax = 0
        dtmax = 0
        try:
            for _ in range(rng.range(1, 12)):
                if rng.chance(850):
                    p = [load_profile(rng, c) for c in range(NCH)]
                    dt = rng.range(200, 20000)
                else:   # idle stretch (night): long tick, nothing flows
                    p = [0, 0, 0]
                    dt = rng.range(60000, 1200000)
                step_dt = dt
                while step_dt > 0:   # the engine integrates at most 20 s per call
                    d = step_dt if step_dt < 20000 else 20000
                    for c in range(NCH):
                        if p[c] is None:
                            r.m.add_gap(c, d)
                        else:
                            r.m.add(c, p[c], d)
                    step_dt -= d
                r.tk.advance(dt)
                sim_ms += dt
                for c in range(2):
                    a = p[c] if p[c] >= 0 else -p[c]
                    if a > pmax:
                        pmax = a
                    if a and dt > dtmax:
                        dtmax = dt
                r.store.tick()
                r.check_dead()
        except PowerCut:
            pass
        truth = r.totals()
        acked = r.saved_totals()
        commits += r.store.commits
        keep = rng.chance(200)        # some are soft resets: retained RAM survives
        try:
            r.power_cut_reboot(keep_fast=keep)
        except Exception as e:
            errs.append("run %d: recovery raised %r" % (k, e))
            break
        rec = r.totals()
        bound = bound_mwh(pol, pmax, dtmax)
        check("run %d" % k, rec, truth, acked, prev, bound, errs)
        if keep:
            soft += 1
            if rec != truth:   # soft/watchdog reset: retained RAM -> nothing lost
                errs.append("run %d: soft reset lost energy %r != %r" % (k, rec, truth))
        for c in range(NCH):
            for d in range(2):
                if truth[c][d] - rec[c][d] > lost_max:
                    lost_max = truth[c][d] - rec[c][d]
        prev = rec
        if len(errs) > 20:
            break
    return {"cuts": n, "sim_days": sim_ms / 86400000, "lost_max_mwh": lost_max, "commits": commits, "soft_resets": soft,
            "erases": r.dev.erases, "errors": errs[:20], "nerr": len(errs)}


def main():
    mode = sys.argv[1]
    if mode == "exhaustive":
        res = exhaustive(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 40)
    else:
        res = randomized(int(sys.argv[2]), int(sys.argv[3]))
    print("RESULT " + json.dumps(res))
    sys.exit(1 if res["nerr"] else 0)


main()
