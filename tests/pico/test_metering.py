"""2 virtual minutes of metering on the emulated Pico, frozen firmware, one
UI2 module: totals within the documented bounds of the exact energy
(README "Accuracy and durability", rbmeter.sim.check_bounds)."""
import pytest

import rbamp_sim
from rbmeter.sim import check_bounds

STEPPED = """t_s,p0_w,p1_w
0,1500,-800
17,3200,-50
41,-2500,1200
63,0,-3600
88,750.5,2999.999
104,-10,10
"""


def _run(board_factory, profile, seconds=120.0):
    b = board_factory(profile=profile, modules="0x50:UI2", seed=3)
    b.run_for(seconds, slice_s=0.5)
    chans = b.totals()
    res = b.result(chans)
    st = b.status()
    return b, res, st


@pytest.mark.xdist_group("pico_b")
def test_constant_two_minutes(board_factory):
    prof = rbamp_sim.Profile.constant([1500.0, -800.0])
    b, res, st = _run(board_factory, prof)
    assert check_bounds(res, prof) == [], res
    # no gaps, and every channel saw both directions it should
    assert all(c["gap_ms"] == 0 for c in res["channels"])
    assert res["channels"][0]["import_mwh"] > 45000 and res["channels"][1]["export_mwh"] > 24000
    assert st.get("gap_events") == "0"


@pytest.mark.xdist_group("pico_a")
def test_stepped_two_minutes(board_factory):
    prof = rbamp_sim.Profile.from_csv(STEPPED)
    b, res, st = _run(board_factory, prof)
    assert check_bounds(res, prof) == [], res
    for c in res["channels"]:
        assert c["import_mwh"] > 0 and c["export_mwh"] > 0
        assert c["gap_ms"] == 0
