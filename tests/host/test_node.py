"""The whole node on the MicroPython unix port (tools/simboard/simnode.py):
register-level simulator on the I2C seam, real LittleFS on a file-backed
flash image, console on a real pty. CPython drives it over the pty with the
project's client (tools/rbmeter) and the PyPI IEC 62056-21 client."""
import json
import os
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "simboard"))

from launch import SimNode, CUT_RC   # noqa: E402
from rbmeter import client as rbc   # noqa: E402
import rbamp_sim   # noqa: E402
import iecread   # noqa: E402

SECRET = "node-test-secret"
MWMS = 3600000
PROFILE = rbamp_sim.Profile.solar_home_day()
WINDOW = 200


def write_config(d, modules=(0x50,), **extra):
    cfg = {"auth": {"secret": SECRET}, "modules": [{"addr": a} for a in modules]}
    cfg.update(extra)
    p = os.path.join(d, "config.json")
    with open(p, "w") as f:
        json.dump(cfg, f)
    return p


def truth_mwh(ch, intervals, profile=PROFILE):
    imp = exp = 0
    for a, b in intervals:
        i, e = profile.energy_mwms(ch, a, b)
        imp += i
        exp += e
    return imp / MWMS, exp / MWMS


@pytest.fixture(scope="module")
def done_node(tmp_path_factory):
    """One node, 120 virtual s, then frozen: every console command on it."""
    d = str(tmp_path_factory.mktemp("node"))
    cfg = write_config(d, modules=(0x50, 0x51))
    n = SimNode(d, ["--virtual", "--duration", "120", "--modules", "0x50:UI2,0x51:I3", "--config", cfg])
    try:
        ready = n.wait("READY", 60)
        done = n.wait("DONE", 120)
        n.ready, n.done, n.dir = ready, done, d
        yield n
    finally:
        n.stop()


def client(n):
    return rbc.Client(n.bridge.host_path, timeout=3.0)


def boot_to_done(d, args):
    """Power the node up on state dir d, run to DONE, read totals and status
    over the console: (ready_ms, done_ms, channels, status)."""
    n = SimNode(d, args)
    try:
        ready = n.wait("READY", 60)
        done = n.wait("DONE", 120)
        with client(n) as c:
            return ready, done, c.channels(), c.status()
    finally:
        n.stop()


def test_info_and_modules(done_node):
    with client(done_node) as c:
        info = c.info()
    assert info["node"]["fw"] == "0.1.0"
    assert info["node"]["uptime_s"] == 120
    mods = {m["addr"]: m for m in info["modules"]}
    assert set(mods) == {"0x50", "0x51"}
    assert mods["0x50"]["variant"] == "UI2" and mods["0x50"]["channels"] == 2
    assert mods["0x51"]["variant"] == "I3" and mods["0x51"]["channels"] == 3
    assert mods["0x50"]["voltage_hw"] is True and mods["0x51"]["voltage_hw"] is False
    assert mods["0x50"]["fw"] == "1.2" and mods["0x50"]["read_mode"] == "burst"
    assert all(m["online"] for m in mods.values())


def test_read_matches_simulator_truth(done_node):
    with client(done_node) as c:
        chans = c.channels()
        one = c.channels("0x51", 2)
        r = c.command("TOTALS 0x50")
    assert len(chans) == 5 and len(one) == 1 and one[0]["module"] == "0x51"
    assert len(r.of("ch")) == 2
    # integration starts with the first RT window after boot
    for rec in chans:
        ch = rec["ch"]
        imp, exp = truth_mwh(ch, [(done_node.ready, done_node.done)])
        if rec["module"] == "0x51":
            imp = exp = 0          # I-variants measure no power (P reads 0.0)
        tol = PROFILE.max_abs_mw(ch, 0, done_node.done) * 2 * WINDOW / MWMS + 1
        assert abs(rec["import_mwh"] - imp) <= tol, (rec, imp, tol)
        assert abs(rec["export_mwh"] - exp) <= tol, (rec, exp, tol)
        assert rec["gap_ms"] == 0
    assert any(r["import_mwh"] > 1000 for r in chans)       # the profile has load


def test_status_save_help_config(done_node):
    with client(done_node) as c:
        st = c.status()
        assert st["fs"] == "ok" and st["io_errors"] == 0 and st["task_errors"] == 0
        assert st["windows"] >= 2 * (120000 // WINDOW) - 10
        with pytest.raises(rbc.AuthError):
            c.save()                                  # SAVE is signed now
        c.auth(SECRET.encode())
        msg = c.save()
        c.logout()
        st2 = c.status()
        if msg == "nothing unsaved":                  # DONE already committed like a shutdown
            assert st2["saves"] == st["saves"] and st2["commits"] == st["commits"]
        else:
            assert msg.startswith("saved ") and st2["saves"] == st["saves"] + 1
            assert st2["last_save_s"] == 0
        cfg = c.config()
        assert cfg["auth.secret"] == "***"           # never shown
        assert cfg["modules.1.addr"] == 0x51
        h = c.command("HELP")
        assert any("PRESET" in ln for ln in h.lines)


def test_auth_set_preset_reset(done_node):
    with client(done_node) as c:
        with pytest.raises(rbc.NodeError):
            c.preset("0x50", 0, 1, 2)                 # not authenticated
        with pytest.raises(rbc.AuthError):
            c.auth(b"wrong but long enough")
        c.auth(SECRET.encode())                       # no lockout
        c.preset("0x50", 1, 123456789, 42)
        ch = c.channels("0x50", 1)[0]
        assert ch["import_mwh"] == 123456789 and ch["export_mwh"] == 42
        with pytest.raises(rbc.NodeError) as e:
            c.preset("0x52", 0, 1, 1)
        assert e.value.code == 400
        c.reset("totals", "0x50", 1)
        assert c.channels("0x50", 1)[0]["import_mwh"] == 0
        assert c.channels("0x50", 1)[0]["export_mwh"] == 0
        assert c.channels("0x50", 0)[0]["import_mwh"] > 1000
        c.reset("counters")
        assert c.status()["windows"] == 0
        msg = c.set("save.threshold_mwh", "500")
        assert "500" in msg
        assert c.config()["save.threshold_mwh"] == 500
        with pytest.raises(rbc.NodeError):
            c.set("save.threshold_mwh", "-1")
        with pytest.raises(rbc.NodeError):
            c.set("no.such", "1")
        c.logout()
        with pytest.raises(rbc.NodeError):
            c.set("save.threshold_mwh", "600")


def test_live_stream(done_node):
    got = []
    with client(done_node) as c:
        t0 = time.monotonic()
        c.live(200, got.append, lambda: len(got) >= 6 or time.monotonic() - t0 > 5)
    assert len(got) >= 6
    assert {g.get("module") for g in got} >= {"0x50"}
    # RT values for people: UI2 (0x50) has voltage hardware: the profile's
    # mains voltage, a current, a PF whose sign follows the power; the I3
    # (0x51) measures current only, so no voltage or PF is claimed for it
    for g in got:
        assert g["i_a"] >= 0.0, g
        if g["module"] == "0x51":
            assert "u_v" not in g and "pf" not in g, g
            continue
        assert 200.0 <= g["u_v"] <= 260.0, g
        assert -1.0 <= g["pf"] <= 1.0, g
        if g["p_mw"] is not None and abs(g["p_mw"]) > 50000:
            assert (g["pf"] > 0) == (g["p_mw"] > 0), g
            assert g["i_a"] > 0.0, g


def test_iec_readout_with_pypi_client(done_node):
    with client(done_node) as c:
        chans = {(r["module"], r["ch"]): r for r in c.channels()}
    vals = {k: v for k, (v, unit) in iecread.readout(done_node.bridge.host_path, 5).items()}
    assert vals
    # every channel's import total appears, exactly as READ gives it
    want = "%06d.%06d" % divmod(chans[("0x50", 0)]["import_mwh"], 1000000)
    assert want in vals.values(), (want, vals)


def test_reboot_command(tmp_path):
    d = str(tmp_path)
    cfg = write_config(d)
    n = SimNode(d, ["--virtual", "--duration", "30", "--config", cfg])
    try:
        n.wait("DONE", 60)
        with client(n) as c:
            before = c.channels()
            c.auth(SECRET.encode())
            c.reboot()
        t = n.wait("REBOOT", 10)
        assert n.proc.wait(10) == 98
    finally:
        n.stop()
    # nothing lost across a commanded reboot: totals were committed first
    n = SimNode(d, ["--virtual", "--duration", "30", "--start-ms", str(t)])
    try:
        n.wait("DONE", 60)
        with client(n) as c:
            after = c.channels()
    finally:
        n.stop()
    for b, a in zip(before, after):
        assert a["import_mwh"] == b["import_mwh"]


def _loss_bound_mwh(p_mw, threshold=1000, min_ms=5000, tick_ms=1000):
    # store policy (docs/persistence.md): max(threshold, P x min interval)
    # per channel, plus one store tick of detection latency
    return max(threshold, p_mw * min_ms // MWMS) + p_mw * tick_ms // MWMS


def test_power_cut_and_restart_recovers_totals(tmp_path):
    d = str(tmp_path)
    cut = 17 * 60000 + 1234
    n = SimNode(d, ["--virtual", "--duration", "1800", "--cut-at-ms", str(cut)])
    try:
        assert n.wait("CUT", 120) == cut
        assert n.proc.wait(10) == CUT_RC
    finally:
        n.stop()
    r2, done, chans, st = boot_to_done(d, ["--virtual", "--duration", "1800", "--start-ms", str(cut)])
    assert st["fs"] == "ok"
    for rec in chans:
        ch = rec["ch"]
        imp, _ = truth_mwh(ch, [(0, cut), (r2, done)])
        p = PROFILE.max_abs_mw(ch, 0, done)
        lo = imp - _loss_bound_mwh(p) - 2 * p * 2 * WINDOW / MWMS - 1
        hi = imp + 2 * p * 2 * WINDOW / MWMS + 1
        assert lo <= rec["import_mwh"] <= hi, (rec, imp, lo, hi)


@pytest.mark.parametrize("k", [2, 25])
def test_cut_at_flash_op_keeps_a_valid_journal(tmp_path, k):
    d = str(tmp_path)
    n = SimNode(d, ["--virtual", "--duration", "300"])
    try:
        n.wait("DONE", 60)
    finally:
        n.stop()
    n = SimNode(d, ["--virtual", "--duration", "900", "--start-ms", "300000", "--cut-at-flash-op", str(k)])
    try:
        t = n.wait("CUT", 120)
    finally:
        n.stop()
    assert n.proc.returncode == CUT_RC
    r3, done, chans, st = boot_to_done(d, ["--virtual", "--duration", "900", "--start-ms", str(t)])
    assert st["fs"] == "ok", st
    rec = chans[0]
    imp, _ = truth_mwh(0, [(0, 300000), (300000, t), (r3, done)])
    p = PROFILE.max_abs_mw(0, 0, done)
    assert imp - 2 * _loss_bound_mwh(p) - 3 * p * 2 * WINDOW / MWMS - 1 <= rec["import_mwh"] <= imp + 1 + \
        3 * p * 2 * WINDOW / MWMS, (rec, imp)


def test_ticks_wrap_crossing_gives_identical_totals(tmp_path):
    res = []
    for st in (0, (1 << 30) - 45000):
        d = str(tmp_path / ("t%d" % st))
        os.mkdir(d)
        n = SimNode(d, ["--virtual", "--duration", "90", "--start-ticks", str(st)])
        try:
            n.wait("DONE", 60)
            with client(n) as c:
                res.append(([(r["import_mwh"], r["export_mwh"], r["gap_ms"]) for r in c.channels()],
                            c.status()["windows"]))
        finally:
            n.stop()
    assert res[0] == res[1]
    assert res[0][1] >= 440


def test_safe_mode_flag_and_pin(tmp_path):
    for flag in ("--safe-flag", "--safe-pin-held"):
        d = str(tmp_path / flag.strip("-"))
        os.mkdir(d)
        n = SimNode(d, ["--virtual", "--duration", "10", flag])
        try:
            n.wait("SAFE", 30)
            assert not any(ln.startswith("READY") for ln in n.lines)
        finally:
            rc = n.stop()
        assert rc == 0, (n.lines, n.err)


def test_boot_py_safe_pin_skips_main(tmp_path):
    # boot.py + main.py as the board runs them, with the safe pin held
    import subprocess
    from launch import MICROPYTHON
    from rbmeter.sim import node_env
    code = ("import machine; machine.attach(pins={0: 0})\n"
            "exec(open('boot.py').read())\n"
            "exec(open('main.py').read())\n"
            "print('main returned')\n")
    r = subprocess.run([MICROPYTHON, "-c", code], cwd=ROOT, env=node_env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "safe mode (pin 0 held)" in r.stdout and "main returned" in r.stdout


def test_real_time_asyncio_runner(tmp_path):
    # the board's runner (one asyncio task per component), clock x20
    d = str(tmp_path)
    n = SimNode(d, ["--speed", "20", "--duration", "40"])
    try:
        r = n.wait("READY", 60)
        done = n.wait("DONE", 60)
        with client(n) as c:
            rec = c.channels("0x50", 0)[0]
            st = c.status()
    finally:
        n.stop()
    assert 40000 <= done < 40500 and st["task_errors"] == 0
    # A loaded test machine can make the runner miss windows (x20 leaves it
    # 10 ms a window): they are counted, never silent, and every window is
    # either read or counted missed.
    want = (done - r) // WINDOW                  # windows published while sampling
    assert st["windows"] >= want // 2 and st["windows"] + st["missed"] >= want - 2, (r, done, st)
    imp, _ = truth_mwh(0, [(r, done)])
    p = PROFILE.max_abs_mw(0, 0, done)
    # scheduling jitter at x20: a few windows, plus each missed one held
    assert abs(rec["import_mwh"] - imp) <= (5 + st["missed"]) * p * WINDOW / MWMS + 1, (rec, imp, st)
