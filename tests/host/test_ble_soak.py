"""Metering continuity under BLE traffic: `rbmeter sim --ble-hci-uart` runs
the node in real time while a central makes 100 connect / READ / disconnect
cycles; afterwards every channel has zero gap time and its energy is within
the documented bounds of the simulator's truth (docs/rbmeter.md).
Run time ~100 s (the radio link runs in real time)."""
import time

import pytest

from rbmeter import sim as _sim
from rbmeter.ble import BleSerial, BumbleCentral
from rbmeter.ble_link import Radio
from rbmeter.client import Client

CYCLES = 100
pytestmark = pytest.mark.xdist_group("ble-soak")


def test_100_ble_sessions_cost_no_energy():
    radio = Radio()
    s = _sim.Sim(_sim.SimOptions(ble_hci_uart=radio.node_tty, secret="soak secret 0123456789"))
    dev = radio.central()
    done = 0
    try:
        s.start()
        while s.state_name != "running":
            s.step(0.2)
            assert not s.finished, s.error
        u = Client(s.control, timeout=10)
        end = time.monotonic() + 30
        while len(u.channels()) < 2 and time.monotonic() < end:
            time.sleep(0.5)
        mtus = (23, 247)
        while done < CYCLES and s.state_name == "running":
            c = BumbleCentral(dev)
            try:
                radio.loop.run(c.connect(radio.node_addr + "/P", mtus[done % 2], timeout=20), 90)
            except Exception as e:
                raise AssertionError("cycle %d: %r" % (done, e))
            cl = Client(BleSerial(c, radio.loop), timeout=10, json_mode=bool(done % 3))
            chans = cl.channels()
            assert len(chans) == 2 and all(ch["gap_ms"] == 0 for ch in chans)
            radio.loop.run(c.disconnect(), 10)    # (waits out Bumble's disconnection race)
            done += 1
            s.step(0)
        assert done == CYCLES, "the run ended after %d cycles" % done
        st = u.status()
        assert st["ble_restarts"] == 0 and st["ble_errors"] == 0 and st["task_errors"] == 0
        chans = u.channels()
        s.stop_now()                 # as rbmeter sim does at Ctrl-C: totals read, then the truth to now
        res = s.result(chans)
        assert all(c["gap_ms"] == 0 for c in res["channels"])
        assert _sim.check_bounds(res, _sim.load_profile(None)) == []
        assert res["channels"][0]["import_mwh"] > 0
        u.close()
    finally:
        s.close()
        radio.close()
