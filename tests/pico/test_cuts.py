"""Power cuts on the emulated Pico, frozen firmware, default store policy
except commits allowed every second (so a cut finds a flash operation
quickly): most cuts land inside a flash erase/program (a random point of
it), the rest at random cycles. After every power-up each direction's total
is at least its last committed value (read from the flash with the node's
own journal code), and at the end the totals are within the documented
under-/over-count bounds (rbmeter.sim.check_bounds)."""
import random

import pytest

import rbamp_sim
from picoboard import board_config, default_files
from picoboard.journal import committed
from rbmeter.sim import check_bounds

S = 1000000000


def _cut_cycles(board_factory, seed, n_cuts, flash_share=0.75):
    prof = rbamp_sim.Profile.from_csv("t_s,p0_w,p1_w\n0,3600,-2400\n40,-1800,3000\n")
    cfg = board_config()
    cfg["save"]["min_interval_s"] = 1
    b = board_factory(profile=prof, modules="0x50:UI2", seed=seed, files=default_files(cfg))
    rng = random.Random(seed)
    b.run_for(1.8, slice_s=0.3)
    last = {}
    flash_cuts = 0
    for i in range(n_cuts):
        if rng.random() < flash_share:
            b.arm_cut_in_flash_op(nth=rng.randrange(3), frac=rng.random(), by_ns=b.t_ns + 6 * S)
        else:
            b.arm_cut_at(b.t_ns + rng.randrange(S // 20, 3 * S))
        while not b.off:
            b.run_until(b.t_ns + S // 4)
        cut = b.cuts[-1][2]
        flash_cuts += cut["kind"] == "flash"
        com = committed(b.files_now())
        for k, v in com.items():
            # a commit, once complete, is never undone by a later cut
            assert v >= last.get(k, (0, 0)), (i, k, v, last.get(k))
        last = com
        b.power_on(b.t_ns + rng.randrange(0, 2 * S))
        b.run_for(1.6, slice_s=0.4)
        tot = b.totals()
        for c in tot:
            imp, exp = com.get((c["module"], c["ch"]), (0, 0))
            assert c["import_mwh"] >= imp and c["export_mwh"] >= exp, (i, cut, c, com)
    b.run_for(2.0, slice_s=0.5)
    res = b.result(b.totals())
    assert not b.resets, "no watchdog resets during the cut cycles: %r" % b.resets
    return b, res, prof, flash_cuts


@pytest.mark.xdist_group("pico_a")
def test_cuts_a(board_factory):
    b, res, prof, flash_cuts = _cut_cycles(board_factory, 11, 52)
    assert res["reboots"] == 52
    assert flash_cuts >= 30, flash_cuts
    assert check_bounds(res, prof) == [], res


@pytest.mark.xdist_group("pico_b")
def test_cuts_b(board_factory):
    b, res, prof, flash_cuts = _cut_cycles(board_factory, 12, 52)
    assert res["reboots"] == 52
    assert flash_cuts >= 30, flash_cuts
    assert check_bounds(res, prof) == [], res
