"""Watchdog and soft resets on the emulated Pico keep every mWh the node had
counted (RAM-retained fast state in the watchdog scratch registers), and a
wedged I2C bus is ridden out (or ends in a watchdog reset) with the totals
intact."""
import random

import pytest

import picoboard
import rbamp_sim
from rbmeter.sim import check_bounds, REL_TOL_PPM, ABS_TOL_MWH, BOOT_LATENCY_MS

S = 1000000000


def _pairs(tot):
    return {(c["module"], c["ch"]): (c["import_mwh"], c["export_mwh"]) for c in tot}


@pytest.mark.xdist_group("pico_a")
def test_resets_lose_nothing(board_factory):
    # 3.6 kW: 1 Wh a second, so at any instant the RAM totals are ahead of
    # the last flash commit (default policy: >= 1 Wh, at most every 5 s)
    prof = rbamp_sim.Profile.constant([3600.0, -3600.0])
    b = board_factory(profile=prof, modules="0x50:UI2", seed=7)
    rng = random.Random(7)
    b.run_for(2.0, slice_s=0.5)
    kinds = ["watchdog", "soft"] * 3
    for kind in kinds:
        b.run_for(rng.uniform(1.0, 4.0), slice_s=0.5)
        before = _pairs(b.totals())
        # a random cycle within the next window or two
        b.run_until(b.t_ns + rng.randrange(1, S // 3))
        b.reset(kind)
        b.run_for(1.6, slice_s=0.4)
        after = _pairs(b.totals())
        for k, (imp, exp) in before.items():
            assert after[k][0] >= imp and after[k][1] >= exp, (kind, k, before[k], after[k])
    # over the whole run: nothing lost but each reboot's own time (the
    # node cannot measure while it boots; BOOT_LATENCY_MS per boot, as after
    # a cut), nothing counted twice
    res = b.result(b.totals())
    truth = {(t["module"], t["ch"]): t for t in res["truth"]}
    boots = 1 + len(kinds)
    for c in res["channels"]:
        t = truth[(c["module"], c["ch"])]
        for key in ("import_mwh", "export_mwh"):
            tol = t[key] * REL_TOL_PPM // 1000000 + ABS_TOL_MWH
            lat = boots * 3600000 * BOOT_LATENCY_MS // 3600000 if t[key] else 0
            assert t[key] - lat - tol <= c[key] <= t[key] + tol + boots, (key, c, t)
    assert [k for _, k in b.resets] == kinds


@pytest.mark.xdist_group("pico_b")
def test_wedged_bus(board_factory):
    """A target holds SDA low for 6 s (every transfer times out, the
    controller stays busy until the line is released):
    the node keeps serving, counts the outage as gap (never as energy it did
    not see), and meters again once the bus is free; totals never drop."""
    prof = rbamp_sim.Profile.constant([2000.0, -1000.0])
    faults = rbamp_sim.Faults(seed=3, wedge_at=(6000, 12000))
    b = board_factory(profile=prof, modules="0x50:UI2", seed=3, faults=faults)
    b.run_for(5.5, slice_s=0.5)
    before = _pairs(b.totals())
    b.run_for(4.0, slice_s=0.5)
    during = b.totals()
    st = b.status()
    assert st["io_errors"] != "0" or st.get("outages") != "0", st
    b.run_for(8.0, slice_s=0.5)
    after = b.totals()
    for c in after:
        k = (c["module"], c["ch"])
        assert c["import_mwh"] >= before[k][0] and c["export_mwh"] >= before[k][1]
        assert c["p_mw"] is not None, "metering again after the wedge"
    # the 6 s without data are gap (less the 2 s bridged with the last power)
    assert all(c["gap_ms"] >= 3500 for c in after), after
    res = b.result(after)
    assert check_bounds(res, prof) == [], res
    assert during is not None


@pytest.mark.xdist_group("pico_b")
def test_wedged_bus_cleared_by_the_node(board_factory):
    """A target holds SDA low for good from 6 s on (every transfer times out,
    the controller stays busy); only 9 SCL clocks (or a chip reset) free it.
    The node clears the bus itself (node.board.bus_clear: SCL clocked as an
    open-drain GPIO, STOP, I2C rebuilt) a few seconds in, or the starved
    watchdog resets the chip; either way it meters again, the outage is gap
    and the totals never drop below what they were before."""
    prof = rbamp_sim.Profile.constant([2000.0, -1000.0])
    faults = rbamp_sim.Faults(seed=4, wedge_at=(6000, 10 ** 9), wedge_clocks=9)
    cfg = picoboard.board_config()
    cfg["modules"] = [{"addr": 0x50}]       # no bus scans (their clocks would free it too)
    b = board_factory(profile=prof, modules="0x50:UI2", seed=4, faults=faults, config=cfg)
    b.run_for(5.5, slice_s=0.5)
    before = _pairs(b.totals())
    b.run_for(9.5, slice_s=0.5)
    after = b.totals()
    st = b.status()
    assert b.unwedged and b.unwedged[0][1] in ("clocks", "reset"), (b.unwedged, st)
    if b.unwedged[0][1] == "clocks":
        assert int(st["bus_recoveries"]) >= 1 and st["bus_wedged"] == "0", st
    for c in after:
        k = (c["module"], c["ch"])
        assert c["import_mwh"] >= before[k][0] and c["export_mwh"] >= before[k][1]
        assert c["p_mw"] is not None, "metering again after the bus clear"
        assert c["gap_ms"] >= 1000, c            # the wedge is gap, not energy
    res = b.result(after)
    assert check_bounds(res, prof) == [], res
