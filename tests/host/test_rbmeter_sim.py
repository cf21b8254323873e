"""`rbmeter sim` end to end: the real node (simnode.py on the MicroPython unix
port) against the simulated rbAmp, totals read back over the console in JSON
mode and checked against the simulator's ground truth within the bounds
documented in docs/rbmeter.md (rbmeter.sim.bounds)."""
import json
import os
import random
import subprocess
import sys

import pytest

from rbmeter import sim as S

ROOT = S.ROOT
RBMETER = os.path.join(ROOT, ".venv", "bin", "rbmeter")
WRAP = 1 << 30
KEYS = {"elapsed_ms", "downtime_ms", "reboots", "channels", "truth"}
CH_KEYS = {"module", "ch", "import_mwh", "export_mwh", "gap_ms"}

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "tools", "simboard", "simnode.py")),
                                reason="simnode not available")


def run_sim(*args, timeout=240):
    r = subprocess.run([RBMETER, "sim", "--json"] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("console: /dev/pts/"), lines[0]
    res = json.loads(lines[-1])
    assert set(res) == KEYS
    for c in res["channels"] + res["truth"]:
        assert set(c) == CH_KEYS
        assert all(isinstance(c[k], int) for k in CH_KEYS - {"module"})
    assert all(t["gap_ms"] == 0 for t in res["truth"])
    return res


def profile():
    return S.load_profile(None)


def test_sim_virtual_crosses_tick_wrap_within_bounds():
    # 10:00..10:20 of the solar-home day: import on ch0, export on ch1;
    # ticks start 600 s before the 2^30 wrap
    res = run_sim("--virtual", "--duration", 1200, "--start-ms", 36000000, "--start-ticks", WRAP - 600000)
    assert 1200000 <= res["elapsed_ms"] < 1200000 + 5000
    assert res["reboots"] == 0 and res["downtime_ms"] == 0
    assert [(c["module"], c["ch"]) for c in res["channels"]] == [("0x50", 0), ("0x50", 1)]
    tr = {(t["module"], t["ch"]): t for t in res["truth"]}
    assert tr[("0x50", 0)]["import_mwh"] + tr[("0x50", 0)]["export_mwh"] > 100000
    assert tr[("0x50", 1)]["export_mwh"] > 100000
    assert S.check_bounds(res, profile()) == []
    # the bound is tight without cuts: well under 1 % on the big totals
    for c in res["channels"]:
        t = tr[(c["module"], c["ch"])]
        for k in ("import_mwh", "export_mwh"):
            assert abs(c[k] - t[k]) <= t[k] // 100 + 20, (c, t)


def test_sim_power_cuts_and_i2c_faults_within_bounds(tmp_path):
    state = tmp_path / "board"
    res = run_sim("--virtual", "--duration", 3600, "--start-ms", 39600000, "--power-cuts", 3,
                  "--i2c-fault-rate", 0.02, "--seed", 5, "--start-ticks", WRAP - 1200000, "--state", state)
    assert res["reboots"] == 3
    assert 0 < res["downtime_ms"] <= 3 * 30000
    assert 3600000 <= res["elapsed_ms"] < 3600000 + 5000
    assert (state / "flash.img").exists()
    bad = S.check_bounds(res, profile())
    assert bad == [], bad
    # powered time excludes the downtime: truth is less than the whole hour
    full = profile().energy_mwms(1, 39600000, 39600000 + 3600000)[1] // S.MWMS_PER_MWH
    t1 = [t for t in res["truth"] if t["ch"] == 1][0]["export_mwh"]
    assert t1 < full


def test_sim_state_dir_keeps_totals(tmp_path):
    state = tmp_path / "board"
    a = run_sim("--virtual", "--duration", 300, "--start-ms", 43200000, "--state", state)
    b = run_sim("--virtual", "--duration", 120, "--start-ms", 43500000, "--state", state)
    # totals continue from the flash image; truth covers this invocation only
    for ca, cb, tb in zip(a["channels"], b["channels"], b["truth"]):
        for k in ("import_mwh", "export_mwh"):
            grown = cb[k] - ca[k]
            assert grown >= 0
            # first run ended without a final save: up to one commit lost
            assert tb[k] - 2 * S.SAVE_THRESHOLD_MWH - 3000 <= grown <= tb[k] + 20, (k, ca, cb, tb)
    assert a["channels"][1]["export_mwh"] > 0


# -- pieces that need no node ------------------------------------------------------------

def test_cut_plan_seeded_and_in_range():
    p1 = S.CutPlan(random.Random(3), 5, 1000, 100000, 0.5, 64)
    p2 = S.CutPlan(random.Random(3), 5, 1000, 100000, 0.5, 64)
    assert p1.cuts == p2.cuts and len(p1.cuts) == 5
    ts = [t for t, _ in p1.cuts]
    assert ts == sorted(ts) and all(1000 < t < 100000 for t in ts)
    assert any(k is not None for _, k in S.CutPlan(random.Random(1), 20, 0, 10**6, 0.5, 64).cuts)
    # an instant passed during downtime moves just after the next boot
    nxt = p1.next_for(ts[0] + 10, 100000)
    assert nxt is not None
    t = nxt[0]
    assert ts[0] + 10 < t <= ts[0] + 10 + 2000


def test_parse_modules():
    assert S.parse_modules("0x50:UI2, 81:i3") == [("0x50", "UI2"), ("0x51", "I3")]
    for bad in ("0x50:XX", "0x50,0x50", "0x05:UI1", ""):
        with pytest.raises(S.SimError):
            S.parse_modules(bad)


def test_truth_and_bounds_arithmetic():
    prof = S.load_profile(None)
    iv = [(0, 3600000), (3700000, 7200000)]
    tr = S.truth_channels(prof, [("0x50", "UI2")], iv)
    want = (prof.energy_mwms(0, 0, 3600000)[0] + prof.energy_mwms(0, 3700000, 7200000)[0]) // 3600000
    assert tr[0]["import_mwh"] == want and len(tr) == 2
    res = {"elapsed_ms": 7200000, "downtime_ms": 100000, "reboots": 1, "truth": tr,
           "channels": [dict(t) for t in tr]}
    assert S.check_bounds(res, prof) == []
    over = 516072 * S.REL_TOL_PPM // 1000000 + S.ABS_TOL_MWH + 2
    assert tr[0]["import_mwh"] == 516072             # the built-in day, 00:00-02:00 minus 100 s
    res["channels"][0]["import_mwh"] += over          # over-counting: only the small tolerance
    assert S.check_bounds(res, prof) == []
    res["channels"][0]["import_mwh"] += 1
    assert S.check_bounds(res, prof)
    res["channels"][0]["import_mwh"] -= over + 1 + 5000   # one cut may lose a few Wh
    assert S.check_bounds(res, prof) == []
    res["channels"].pop()
    assert "not reported" in S.check_bounds(res, prof)[0]


def test_cli_commands_against_the_real_node(tmp_path, capsys, monkeypatch):
    """Every console command of rbmeter against simnode (after DONE the node
    keeps serving its console), incl. AUTH with a provisioned secret."""
    from rbmeter import cli
    sim = S.Sim(S.SimOptions(virtual=True, duration_s=30, start_ms=43200000, secret="s3cret horse battery",
                             state=str(tmp_path / "b")))
    try:
        sim.start()
        sim.run_to_end()
        assert sim.state_name == "done", sim.error
        port = ["--port", sim.console]
        monkeypatch.setenv("RBMETER_SECRET", "s3cret horse battery")

        def run(*argv):
            rc = cli.main(list(argv) + port)
            out = capsys.readouterr()
            assert rc == 0, out.err
            return out.out

        inf = json.loads(run("info", "--json"))
        assert inf["modules"][0]["addr"] == "0x50" and inf["modules"][0]["variant"] == "UI2"
        tot = json.loads(run("totals", "--json"))
        assert [c["ch"] for c in tot] == [0, 1] and tot[1]["export_mwh"] > 0
        assert "0x50" in run("live", "--once")
        ob = json.loads(run("obis", "--json"))
        d = {x["obis"]: x for x in ob["data"]}
        assert d["1-2:2.8.0"]["unit"] == "kWh"
        assert int(d["1-2:2.8.0"]["value"].replace(".", "")) == tot[1]["export_mwh"]
        run("preset", "0x50", "0", "1234.567891", "0.5")
        after = json.loads(run("totals", "0x50", "0", "--json"))
        assert (after[0]["import_mwh"], after[0]["export_mwh"]) == (1234567891, 500000)
        assert "save.max_interval_s" in run("set", "save.max_interval_s", "300")
        run("reset", "totals", "0x50", "1", "--yes")
        assert json.loads(run("totals", "0x50", "1", "--json"))[0]["export_mwh"] == 0
        monkeypatch.setenv("RBMETER_SECRET", "wrong but long enough")
        assert cli.main(["reset", "counters", "--yes"] + port) == 3
        capsys.readouterr()
    finally:
        sim.close()


def test_sim_watch_real_time():
    """`make run` path: real time, live view over the monitor port, summary at the end."""
    r = subprocess.run([RBMETER, "sim", "--watch", "--duration", "2.5", "--interval", "0.5",
                        "--start-ms", "43200000"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    out = r.stdout
    assert out.startswith("console: /dev/pts/")
    assert "miniterm" in out
    assert out.count("\x1b[H\x1b[2J") >= 2 and "import kWh" in out
    assert "within the documented bounds" in out


def test_sim_several_modules_on_one_bus_all_metered():
    # no module list in the node's config: it scans the bus after the modules'
    # boot time and meters every module; the I-variant (no voltage hardware)
    # measures no power, so its truth and its totals are both 0
    res = run_sim("--virtual", "--duration", 300, "--start-ms", 36000000,
                  "--modules", "0x50:UI2,0x51:UI3,0x52:I1")
    got = [(c["module"], c["ch"]) for c in res["channels"]]
    assert got == [("0x50", 0), ("0x50", 1), ("0x51", 0), ("0x51", 1), ("0x51", 2), ("0x52", 0)], got
    tr = {(t["module"], t["ch"]): t for t in res["truth"]}
    assert tr[("0x51", 1)]["export_mwh"] > 10000           # the second module sees the PV export too
    assert tr[("0x52", 0)]["import_mwh"] == tr[("0x52", 0)]["export_mwh"] == 0
    assert S.check_bounds(res, profile()) == []
