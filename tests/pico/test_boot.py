"""Boot on the emulated Pico, frozen firmware: whatever the filesystem holds
the node answers on UART0 and says what is wrong in STATUS (never a crash
loop); the safe pin keeps the app off; a node without its module serves
and finds the module when it appears."""
import pytest

import rbamp_sim
from picoboard import board_config, default_files

PROF = rbamp_sim.Profile.constant([1500.0, -800.0])


def _boots_and_answers(b, seconds=4.0):
    b.run_for(seconds, slice_s=0.5)
    st = b.status(timeout_s=5)
    b.run_for(2.0, slice_s=0.5)
    st2 = b.status(timeout_s=5)
    assert not b.resets, "crash/reset loop: %r" % b.resets
    assert int(st2["uptime_s"]) > int(st["uptime_s"]) or int(st2["windows"]) > int(st["windows"])
    return st2


def _problems(st):
    return st.get("problems") or ""


@pytest.mark.xdist_group("pico_a")
def test_bad_config(board_factory):
    b = board_factory(profile=PROF, config='{"i2c": {"id": 0, "scl": 5, ')
    st = _boots_and_answers(b)
    assert "config.json" in _problems(st) and "JSON" in _problems(st), st
    assert int(st["windows"]) > 0        # defaults: the module is found and metered


@pytest.mark.xdist_group("pico_a")
def test_pins_the_board_does_not_have(board_factory):
    cfg = board_config()
    cfg["i2c"].update(scl=40, sda=41)
    cfg["uart"].update(tx=3, rx=2)        # not UART0 pins
    b = board_factory(profile=PROF, files=default_files(cfg))
    st = _boots_and_answers(b)
    p = _problems(st)
    assert "i2c" in p and "uart" in p, st


@pytest.mark.xdist_group("pico_b")
def test_missing_config(board_factory):
    b = board_factory(profile=PROF, config=None)
    st = _boots_and_answers(b)
    assert int(st["windows"]) > 0        # no module list: the bus scan (software I2C) found 0x50
    assert "config" in _problems(st), st


@pytest.mark.xdist_group("pico_b")
def test_blank_filesystem(board_factory, fw):
    with open(fw, "rb") as f:
        img = bytearray(b"\xff" * (2 * 1024 * 1024))
        data = f.read()
        img[:len(data)] = data
    b = board_factory(profile=PROF, flash_image=bytes(img))
    st = _boots_and_answers(b)
    assert _problems(st), st


@pytest.mark.xdist_group("pico_b")
def test_safe_pin_enters_safe_mode(board_factory):
    # GP15 not pulled up = the safe-mode button held at reset
    b = board_factory(profile=PROF, pins_high=(1,))
    b.run_for(10.0, slice_s=1.0)
    st = b.stats()
    assert st["i2cTx"] == 0, "the app started"
    assert not b.resets, "the watchdog must not be armed in safe mode"
    assert b.tx == b""
    assert not any(p.startswith("/rbmeter") or p.startswith("/store") for p in b.files_now())


@pytest.mark.xdist_group("pico_a")
def test_no_module_then_module_appears(board_factory):
    b = board_factory(profile=PROF, modules=[])
    st = _boots_and_answers(b, 3.0)
    assert "0x50" in _problems(st) or st.get("faults"), st
    mod = rbamp_sim.Module(addr=0x50, variant="UI2", profile=PROF, seed=1)
    t_on = b.clock.now_ms() + 1000
    b.add_module_at(t_on, mod)
    # the node probes missing modules now and then without stalling: found
    # within half a minute, then metered
    for _ in range(15):
        b.run_for(2.0, slice_s=1.0)
        if any("online=true" in ln for ln in b.command("INFO")):
            break
    b.run_for(3.0, slice_s=1.0)
    tot = b.totals()
    assert [(c["module"], c["ch"]) for c in tot] == [("0x50", 0), ("0x50", 1)]
    assert tot[0]["import_mwh"] > 0 and tot[1]["export_mwh"] > 0 and tot[0]["p_mw"] == 1500000, tot
    assert not b.resets
